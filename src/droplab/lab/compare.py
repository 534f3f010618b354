"""``droplab compare``: the same network with and without dropout, over several seeds.

Both arms share the architecture, the optimiser and, seed for seed, the initial weights;
only the drop probability differs. The default is MNIST-1D (generated offline), an MLP
40-256-256-10 with p = 0.3 after each hidden layer, Adam 1e-3, batches of 100, where
dropout is known to raise test accuracy by several points.
"""

from __future__ import annotations

import argparse
import dataclasses

HELP = "same network with and without dropout, over several seeds"


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type, hidden_flag

    parser.add_argument("--dataset", default="mnist1d",
                        help="a registered data set (spiral, moons, circles, digits, breast_cancer, mnist1d) "
                             "or a .npz/.csv file")
    parser.add_argument("--p", type=flag_type("p"), default=0.3,
                        help=f"drop probability of the dropout arm ({bounds_help('p')})")
    parser.add_argument("--input-p", type=flag_type("input_p"), default=0.0,
                        help=f"drop probability on the inputs, dropout arm ({bounds_help('input_p')})")
    parser.add_argument("--variant", default="dropout",
                        help="dropout variant(s) for the dropout arm; several, comma-separated, give one arm each "
                             "(mlp: dropout, classic, gaussian, alpha; cnn: dropout, dropout2d, dropblock, "
                             "gaussian; rnn: dropout, locked)")
    parser.add_argument("--model", default="mlp",
                        help="mlp; cnn (Conv-ReLU-dropout-pool-Dense on image data sets, e.g. digits); rnn (the "
                             "features read as a sequence, e.g. mnist1d); --hidden and --activation apply to mlp")
    parser.add_argument("--hidden", type=hidden_flag, default="256,256",
                        help="hidden layer sizes, comma-separated (each 1 to 8192, at most 64 layers, at most "
                             "2^26 weights between hidden layers: 256 MiB)")
    parser.add_argument("--activation", default="relu", help="relu, leaky_relu, tanh, sigmoid or selu")
    parser.add_argument("--epochs", type=flag_type("epochs"), default=150,
                        help=f"passes over the training data ({bounds_help('epochs')})")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), default=100,
                        help=f"mini-batch size ({bounds_help('batch_size')})")
    parser.add_argument("--optimizer", default="adam", help="adam, adamw or sgd (momentum 0.9)")
    parser.add_argument("--lr", type=flag_type("lr"), default=1e-3,
                        help=f"learning rate ({bounds_help('lr')})")
    parser.add_argument("--l2", type=flag_type("l2"), default=0.0,
                        help=f"L2 penalty on every weight matrix ({bounds_help('l2')})")
    parser.add_argument("--max-norm", type=flag_type("max_norm"), default=0.0,
                        help="max-norm constraint on each unit's incoming weights after every step "
                             f"({bounds_help('max_norm')})")
    parser.add_argument("--seeds", type=flag_type("seeds"), default=3,
                        help=f"number of seeds per arm ({bounds_help('seeds')})")
    parser.add_argument("--label", default="label", help="label column of a .csv data set")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"),
                        help="train with the NumPy engine or with PyTorch (droplab.torch; same weights, "
                             "masks and shuffling)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run with the same flags: finished runs are kept and the "
                             "interrupted one resumes bit-identically from its last checkpoint (kept in the hidden "
                             "folder --out/.droplab-work until the results are written)")
    parser.add_argument("--checkpoint-every", type=flag_type("checkpoint_every"), default=10,
                        help="epochs between checkpoints of the run in progress, numpy backend "
                             f"({bounds_help('checkpoint_every')})")


def run(args: argparse.Namespace) -> int:
    from droplab import _validate, data
    from droplab.lab import experiment, models

    where = "compare"
    p = _validate.probability(where, "p", args.p)
    seeds = _validate.positive_int(where, "seeds", args.seeds)
    variants = [v.strip() for v in str(args.variant).split(",") if v.strip()] or ["dropout"]
    model = _validate.one_of(where, "model", args.model, models.MODELS)
    if getattr(args, "backend", "numpy") == "torch" and model != "mlp":
        raise ValueError(_validate.message(where, "model", "'mlp' with --backend torch", model,
                                           "The cnn and rnn models train with the NumPy engine."))
    for v in variants:
        _validate.one_of(where, "variant", v, models.MODELS[model])
    batch = None if args.batch_size == 0 else args.batch_size
    base = experiment.RunConfig(
        hidden=models.parse_hidden(args.hidden), activation=args.activation, variant=variants[0],
        input_p=args.input_p, epochs=args.epochs, batch_size=batch, optimizer=args.optimizer, lr=args.lr,
        l2=args.l2, max_norm=args.max_norm or None, model=model).validate(where)
    _validate.positive_int(where, "checkpoint_every", args.checkpoint_every)
    if args.backend == "torch" and base.max_norm:
        raise ValueError(_validate.message(where, "max_norm", "0 with --backend torch", args.max_norm,
                                           "The max-norm constraint is applied by the NumPy engine's fit."))
    options = {"label": args.label} if str(args.dataset).endswith(".csv") else {}
    ds = data.load(args.dataset, **options)
    if model == "cnn" and ds.image_shape is None:
        raise ValueError(_validate.message(where, "model", "'mlp' or 'rnn' for a data set without an image shape",
                                           model, f"{ds.name} has no (C, H, W) layout; try --dataset digits."))

    arms = [("no dropout", base, 0.0)]
    for v in variants:
        label = f"{v} p={p:g}" if len(variants) > 1 or v != "dropout" else f"dropout p={p:g}"
        arms.append((label, dataclasses.replace(base, variant=v), p))
    run_seeds = [args.seed + i for i in range(seeds)]
    return _execute(args, ds, arms, run_seeds)


def _execute(args, ds, arms, run_seeds) -> int:
    import shutil

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    import numpy as np

    from droplab import kernels
    from droplab._validate import message as _validate_message
    from droplab.lab import experiment

    for dt in (np.float32, np.float64):  # compile the mask kernels before anything is timed
        kernels.apply(np.ones(64, dt), 0.5, (0, 0), 0, 2.0)
    console = Console(stderr=False, quiet=args.quiet)
    if not console.is_terminal:  # piped or captured: room for the whole table on one line per arm
        console = Console(stderr=False, quiet=args.quiet, width=120)
    backend = getattr(args, "backend", "numpy")
    if backend == "torch":
        try:
            from droplab.torch.train import train_run
        except ImportError:
            from droplab._install import TORCH_HINT

            raise ValueError(_validate_message("compare", "backend", "'numpy' here (PyTorch is not installed)",
                                               backend, f"To use it, {TORCH_HINT}.")) from None
    else:
        train_run = experiment.train_run
    total = len(arms) * len(run_seeds) * arms[0][1].epochs
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=args.quiet, transient=True, console=console)
    from droplab.lab._results import force_flag, results_dir

    # the lock is held from the first run to the last file; finished runs wait in --out/.droplab-work
    # (kept on any failure, so --resume can continue; removed once the results are in place)
    with results_dir(args.out, "compare", force=force_flag(args)) as tmp:
        work = _work_dir(args, ds, arms, run_seeds, backend)
        try:
            _train_and_write(args, ds, arms, run_seeds, backend, train_run, work, console, progress, total, tmp)
        except KeyboardInterrupt:
            console.print(f"interrupted: finished runs are kept in {work}; rerun with --resume to continue")
            raise
    shutil.rmtree(work, ignore_errors=True)
    _report_done(console, ds, args.out)
    return 0


def _report_done(console, ds, out) -> None:
    console.print(f"results written to {out}/ (results.json, learning_curves.png"
                  + (", decision_boundary.png)" if ds.X_train.reshape(len(ds.X_train), -1).shape[1] == 2 else ")"))


def _train_and_write(args, ds, arms, run_seeds, backend, train_run, work, console, progress, total, tmp) -> None:
    from droplab.lab import experiment, plots
    from droplab.lab._results import versions, write_json

    runs: list[dict] = []
    models_seed0: dict[str, object] = {}
    with progress:
        task = progress.add_task("compare", total=total)
        index = 0
        for label, cfg, p in arms:
            for s in run_seeds:
                progress.update(task, description=f"{label}, seed {s}")
                record, model = _one_run(work, index, train_run, backend, ds, cfg, p, s, args,
                                         keep_model=s == run_seeds[0],
                                         on_epoch=lambda: progress.advance(task),
                                         note=lambda text: console.print(text, soft_wrap=True, markup=False))
                progress.update(task, completed=(index + 1) * cfg.epochs)
                runs.append({"arm": label, "variant": cfg.variant, **record})
                if model is not None and not record.get("diverged"):
                    models_seed0[label] = model
                index += 1
    summary = []
    for label, cfg, p in arms:
        mine = [r for r in runs if r["arm"] == label]
        summary.append({"arm": label, "variant": cfg.variant, "p": p, **experiment.summarize(mine)})
    results = {
        "command": "compare",
        "config": {"dataset": ds.name, "dataset_description": ds.description, "seed": args.seed,
                   "backend": backend,
                   "seeds": run_seeds, "p": arms[-1][2], "arms": [a[0] for a in arms],
                   **arms[0][1].to_dict()},
        "versions": versions(),
        "runs": runs,
        "summary": summary,
    }
    write_json(tmp / "results.json", results)
    curves = {label: [{k: [float("nan") if x is None else x for x in v] for k, v in r["history"].items()}
                      for r in runs if r["arm"] == label and r.get("history")] for label, _, _ in arms}
    plots.learning_curves({k: v for k, v in curves.items() if v},
                          tmp / "learning_curves.png", title=f"{ds.name}: training batches, dropout on (dashed) vs validation (solid)")
    if int(ds.X_train.reshape(len(ds.X_train), -1).shape[1]) == 2 and models_seed0:
        plots.decision_boundary({label: m.predict for label, m in models_seed0.items()}, ds.X_train, ds.y_train,
                                tmp / "decision_boundary.png", title=f"{ds.name}, seed {run_seeds[0]}")
    _print_table(console, ds, summary, len(run_seeds))


def _work_dir(args, ds, arms, run_seeds, backend):
    """The hidden folder ``--out/.droplab-work`` where finished runs and checkpoints wait.

    ``--resume`` reuses it if it was made by the same command line (same flags, same data);
    otherwise it starts empty. It is removed once the results are in place, and kept after a
    failure or an interruption so that ``--resume`` can continue.
    """
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from droplab import _validate
    from droplab.lab._results import WORK

    work = Path(args.out) / WORK
    spec = {"dataset": ds.name, "n_train": len(ds.y_train), "seeds": run_seeds, "backend": backend,
            "arms": [[label, cfg.to_dict(), p] for label, cfg, p in arms]}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    stamp = work / "config.sha256"
    if args.resume and work.is_dir():
        try:
            found = stamp.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            found = None
        if found != digest:
            raise ValueError(_validate.message(
                "compare", "resume", "used with the flags of the interrupted run", True,
                f"{work} was made by a different command line (or its {stamp.name} is damaged); "
                "rerun without --resume to start afresh."))
        return work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stamp.write_text(digest + "\n")
    return work


def _read_record(path):
    """A finished run's record, or None when the file is missing, torn or not a record."""
    import json

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(record, dict) and {"p", "seed", "metrics", "history"} <= set(record)
    return record if ok else None


def _one_run(work, index, train_run, backend, ds, cfg, p, seed, args, *, keep_model, on_epoch, note=print):
    """One arm x seed: reused from ``work`` when it finished before, else trained (resuming
    from its checkpoint when one is there) and recorded in ``work``.

    A damaged file in ``work`` costs only its own run: it is named (``note``) and that run is
    computed again (from the start when its checkpoint is the damaged file).
    """
    import contextlib

    from droplab import nn
    from droplab.lab._results import write_json

    done, saved = work / f"run-{index}.json", work / f"run-{index}.model.npz"
    ckpt = work / f"run-{index}.ckpt.npz"
    if done.exists():
        record = _read_record(done)
        model = None
        if record is None:
            note(f"{done} is damaged; run {index} ({cfg.variant} p={p:g}, seed {seed}) is computed again")
        elif keep_model and backend == "numpy" and saved.exists():
            try:
                model = nn.load(saved)
            except (ValueError, OSError) as exc:
                note(f"{saved} is damaged ({exc}); run {index} is computed again")
                record = None
        elif keep_model and backend == "numpy":
            record = None  # the model for the plots is missing: train the run again
        if record is not None:
            if keep_model and model is None:  # the torch model is not kept: train it again for the plots
                record, model = train_run(ds, cfg, p=p, seed=seed)
            return record, model
        with contextlib.suppress(FileNotFoundError):
            done.unlink()
    if backend == "numpy":
        try:
            record, model = train_run(ds, cfg, p=p, seed=seed, on_epoch=on_epoch, checkpoint=ckpt,
                                      checkpoint_every=args.checkpoint_every)
        except (ValueError, OSError) as exc:
            if not ckpt.exists():
                raise
            note(f"{ckpt} could not be resumed ({exc}); run {index} starts again from its first epoch")
            ckpt.unlink()
            record, model = train_run(ds, cfg, p=p, seed=seed, on_epoch=on_epoch, checkpoint=ckpt,
                                      checkpoint_every=args.checkpoint_every)
        if keep_model:
            model.save(saved)
    else:
        record, model = train_run(ds, cfg, p=p, seed=seed, on_epoch=on_epoch)
    write_json(done, record)
    return record, (model if keep_model else None)


def _print_table(console, ds, summary, n_seeds) -> None:
    from rich.table import Table

    table = Table(title=f"droplab compare: {ds.name}, mean ± std over {n_seeds} seed(s)")
    cols = [("train acc (eval)", "train_accuracy", 100, "{:.1f}"), ("val acc", "val_accuracy", 100, "{:.1f}"),
            ("gap (points)", "gap", 100, "{:.1f}"), ("val loss", "val_loss", 1, "{:.3f}"),
            ("ms / epoch", "seconds_per_epoch", 1000, "{:.1f}")]
    table.add_column("arm")
    for name, *_ in cols:
        table.add_column(name, justify="right")
    for row in summary:
        cells = []
        for _, key, mult, fmt in cols:
            if row[key]["mean"] is None:
                cells.append("–")
                continue
            m, s = row[key]["mean"] * mult, row[key]["std"] * mult
            cells.append(f"{fmt.format(m)} ± {fmt.format(s)}")
        table.add_row(row["arm"], *cells)
    console.print(table)
    for row in summary:
        if row.get("diverged"):
            console.print(f"{row['arm']}: {row['diverged']} of {n_seeds} run(s) diverged (recorded with "
                          "\"diverged\": true and no metrics; the figures above leave them out)", soft_wrap=True)
