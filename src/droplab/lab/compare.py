"""``droplab compare``: the same network with and without dropout, over several seeds.

A small sweep: one arm without dropout and one per ``--variant`` with ``--p``, times
``--seeds`` seeds, run through the lab's one runner (:mod:`droplab.lab.runner`: in parallel
on the usable cores, journaled, resumed by rerunning the same command). Both arms share the
architecture, the optimiser and, seed for seed, the initial weights; only the drop probability
differs. The default is MNIST-1D (generated offline), an MLP 40-256-256-10 with p = 0.3 after
each hidden layer, Adam 1e-3, batches of 100, where dropout is known to raise validation
accuracy by several points.
"""

from __future__ import annotations

import argparse

HELP = "same network with and without dropout, over several seeds"
QUICK = {"epochs": 30}


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab.lab import flags

    flags.add(parser, ["dataset", "model", "variant", "p", "input_p", "hidden", "activation", "init", "epochs",
                       "batch_size", "optimizer", "lr", "decay", "l2", "first_l2", "max_norm", "seeds", "label",
                       "engine", "workers", "backend", "address", "resume", "checkpoint_every", "quick"],
              quick=QUICK)


def run(args: argparse.Namespace) -> int:
    from droplab import _validate
    from droplab.lab import experiment, flags, runner

    where = "compare"
    flags.resolve(args, where, engine=True)
    p = _validate.probability(where, "p", args.p)
    variants = [v.strip() for v in str(args.variant).split(",") if v.strip()] or ["dropout"]
    base = flags.run_config(args, where, variant=variants[0])
    for v in variants:
        flags.run_config(args, where, variant=v)
    ds = runner.dataset(base)  # bad names and files fail here, before anything is written
    for v in variants:  # the model and each variant fit the data's shape (the CNN: an image or a signal)
        experiment.sample_shape(ds, base.replace(variant=v), where)
    arms = [("no dropout", base, 0.0)]
    for v in variants:
        arms.append((f"{v} p={p:g}", base.replace(variant=v), p))
    seeds = [args.seed + i for i in range(args.seeds)]
    return _execute(args, ds, arms, seeds)


def tasks_of(arms, seeds) -> list:
    """One task per arm and seed; seed 0 of each arm keeps its model (for the plots)."""
    from droplab.lab import runner

    return [runner.Task(runner.run_key({"config": cfg.to_dict(), "p": p, "arm": label}, s), cfg, p, s,
                        {"arm": label, "variant": cfg.variant}, keep_model=s == seeds[0])
            for label, cfg, p in arms for s in seeds]


def _execute(args, ds, arms, seeds) -> int:
    from rich.console import Console

    from droplab.lab import readings, runner, stats
    from droplab.lab._results import done_line, force_flag, results_dir, write_results

    console = Console(quiet=args.quiet)
    tasks = tasks_of(arms, seeds)
    base = arms[0][1]
    spec = {"command": "compare", "runs": [t.key for t in tasks], "data": [ds.name, len(ds.y_train)]}
    with results_dir(args.out, "compare", force=force_flag(args)) as tmp:
        journal = runner.Journal.hidden(args.out, spec, "compare")
        ran = runner.execute(tasks, workers=args.workers, backend_name=args.backend, address=args.address,
                             journal=journal, resume=args.resume, console=console, quiet=args.quiet,
                             description="compare", checkpoint_every=args.checkpoint_every)
        runs = ran.records
        labels = [a[0] for a in arms]
        summary = [{"arm": label, "variant": cfg.variant, "p": p, **readings.summarize(
            [r for r in runs if r["arm"] == label])} for label, cfg, p in arms]
        table = readings.arm_table(f"droplab compare: {ds.name}, {len(seeds)} seed(s) per arm", summary)
        reading = _reading(runs, arms)
        files = ["results.json", "learning_curves.png"]
        write_results(tmp, "compare", config={
            "dataset": ds.name, "dataset_description": ds.description, "seed": args.seed, "seeds": seeds,
            "p": arms[-1][2], "arms": labels, **base.to_dict(),
            "backend": base.engine,  # deprecated: the engine's old key, kept for one release
            "execution": {"backend": args.backend, "workers": args.workers,
                          "address": runner.public_address(args.address)}},
            runs=runs, summary=summary, tables=[table], reading=reading, statistics=stats.HEADER)
        _plots(tmp, ds, arms, runs, ran.models, seeds, files)
    journal.close()
    from droplab.lab import tables

    tables.show(console, table)
    for row in summary:
        if row["diverged"]:
            console.print(f"{row['arm']}: {row['diverged']} of {len(seeds)} run(s) diverged (recorded with "
                          "\"diverged\": true and no metrics; the figures above leave them out)", soft_wrap=True)
    for line in reading:
        console.print(f"- {line}", highlight=False, markup=False)
    done_line(console, args.out, files)
    return 0


def _reading(runs, arms) -> list[str]:
    from droplab.lab import readings, stats

    out = []
    base = arms[0][0]
    for label, _, _ in arms[1:]:
        acc = readings.paired_sentence(runs, {"arm": label}, {"arm": base}, subject=label)
        loss = readings.paired_sentence(runs, {"arm": label}, {"arm": base}, subject=label, metric="val_loss",
                                        what="validation loss", scale=1, unit="", digits=3)
        out += [f"{acc}.", f"{loss}."]
        tr = stats.summary([r["metrics"].get("train_accuracy") for r in runs if r["arm"] == label and readings.ok(r)])
        if tr["mean"] is not None and tr["max"] < 0.9:
            out.append(f"{label} reaches only {stats.fmt(tr, 100)}% train accuracy (eval mode): the network "
                       "underfits, where a regulariser such as dropout is not expected to help.")
    return out


def _plots(tmp, ds, arms, runs, models, seeds, files) -> None:
    from droplab.lab import plots

    curves = {label: [{k: [float("nan") if x is None else x for x in v] for k, v in r["history"].items()}
                      for r in runs if r["arm"] == label and r.get("history")] for label, _, _ in arms}
    plots.learning_curves({k: v for k, v in curves.items() if v}, tmp / "learning_curves.png",
                          title=f"{ds.name}: training batches, dropout on (dashed) vs validation (solid)")
    kept = {r["arm"]: models[r["key"]] for r in runs if r["key"] in models}
    if int(ds.X_train.reshape(len(ds.X_train), -1).shape[1]) == 2 and kept:
        plots.decision_boundary({label: m.predict for label, m in kept.items()}, ds.X_train, ds.y_train,
                                tmp / "decision_boundary.png", title=f"{ds.name}, seed {seeds[0]}")
        files.append("decision_boundary.png")
