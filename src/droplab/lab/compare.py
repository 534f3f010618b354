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
    parser.add_argument("--dataset", default="mnist1d",
                        help="a registered data set (spiral, moons, circles, digits, breast_cancer, mnist1d) "
                             "or a .npz/.csv file")
    parser.add_argument("--p", type=float, default=0.3, help="drop probability of the dropout arm")
    parser.add_argument("--input-p", type=float, default=0.0, help="drop probability on the inputs (dropout arm)")
    parser.add_argument("--variant", default="dropout",
                        help="dropout variant(s) for the dropout arm; several, comma-separated, give one arm each "
                             "(mlp: dropout, classic, gaussian, alpha; cnn: dropout, dropout2d, dropblock, "
                             "gaussian; rnn: dropout, locked)")
    parser.add_argument("--model", default="mlp",
                        help="mlp; cnn (Conv-ReLU-dropout-pool-Dense on image data sets, e.g. digits); rnn (the "
                             "features read as a sequence, e.g. mnist1d); --hidden and --activation apply to mlp")
    parser.add_argument("--hidden", default="256,256", help="hidden layer sizes, comma-separated")
    parser.add_argument("--activation", default="relu", help="relu, leaky_relu, tanh, sigmoid or selu")
    parser.add_argument("--epochs", type=int, default=150, help="passes over the training data")
    parser.add_argument("--batch-size", type=int, default=100, help="mini-batch size (0: full batch)")
    parser.add_argument("--optimizer", default="adam", help="adam, adamw or sgd (momentum 0.9)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty on every weight matrix")
    parser.add_argument("--max-norm", type=float, default=0.0,
                        help="max-norm constraint on each unit's incoming weights after every step (0: off)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per arm")
    parser.add_argument("--label", default="label", help="label column of a .csv data set")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"),
                        help="train with the NumPy engine or with PyTorch (droplab.torch; same weights, "
                             "masks and shuffling)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run with the same flags: finished runs are kept and the "
                             "interrupted one resumes bit-identically from its last checkpoint (kept in a hidden "
                             "folder .OUT.work beside --out until the results are written)")
    parser.add_argument("--checkpoint-every", type=int, default=10,
                        help="epochs between checkpoints of the run in progress (numpy backend)")


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
            raise ValueError(_validate_message("compare", "backend", "'numpy' here (PyTorch is not installed)",
                                               backend, "Install it with `pip install 'droplab[torch]'`.")) from None
    else:
        train_run = experiment.train_run
    total = len(arms) * len(run_seeds) * arms[0][1].epochs
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=args.quiet, transient=True, console=console)
    work = _work_dir(args, ds, arms, run_seeds, backend)
    try:
        _train_and_write(args, ds, arms, run_seeds, backend, train_run, work, console, progress, total)
    except KeyboardInterrupt:
        console.print(f"interrupted: finished runs are kept in {work}; rerun with --resume to continue")
        raise
    except Exception:
        shutil.rmtree(work, ignore_errors=True)  # a failed command leaves nothing behind
        raise
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _train_and_write(args, ds, arms, run_seeds, backend, train_run, work, console, progress, total) -> None:
    from droplab.lab import experiment, plots
    from droplab.lab._results import results_dir, versions, write_json

    runs: list[dict] = []
    models_seed0: dict[str, object] = {}
    with results_dir(args.out) as tmp:
        with progress:
            task = progress.add_task("compare", total=total)
            index = 0
            for label, cfg, p in arms:
                for s in run_seeds:
                    progress.update(task, description=f"{label}, seed {s}")
                    record, model = _one_run(work, index, train_run, backend, ds, cfg, p, s, args,
                                             keep_model=s == run_seeds[0],
                                             on_epoch=lambda: progress.advance(task))
                    progress.update(task, completed=(index + 1) * cfg.epochs)
                    runs.append({"arm": label, "variant": cfg.variant, **record})
                    if model is not None:
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
        plots.learning_curves({label: [r["history"] for r in runs if r["arm"] == label] for label, _, _ in arms},
                              tmp / "learning_curves.png", title=f"{ds.name}: training batches, dropout on (dashed) vs validation (solid)")
        if int(ds.X_train.reshape(len(ds.X_train), -1).shape[1]) == 2:
            plots.decision_boundary({label: m.predict for label, m in models_seed0.items()}, ds.X_train, ds.y_train,
                                    tmp / "decision_boundary.png", title=f"{ds.name}, seed {run_seeds[0]}")
    _print_table(console, ds, summary, len(run_seeds))
    console.print(f"results written to {args.out}/ (results.json, learning_curves.png"
                  + (", decision_boundary.png)" if ds.X_train.reshape(len(ds.X_train), -1).shape[1] == 2 else ")"))


def _work_dir(args, ds, arms, run_seeds, backend):
    """The hidden folder beside ``--out`` where finished runs and checkpoints wait.

    ``--resume`` reuses it if it was made by the same command line (same flags, same data);
    otherwise it starts empty. It is removed once the results folder is in place.
    """
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from droplab import _validate

    out = Path(args.out)
    work = out.parent / f".{out.name}.work"
    spec = {"dataset": ds.name, "n_train": len(ds.y_train), "seeds": run_seeds, "backend": backend,
            "arms": [[label, cfg.to_dict(), p] for label, cfg, p in arms]}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    stamp = work / "config.sha256"
    if args.resume and work.is_dir():
        if not stamp.is_file() or stamp.read_text().strip() != digest:
            raise ValueError(_validate.message(
                "compare", "resume", "used with the flags of the interrupted run", True,
                f"{work} was made by a different command line; rerun without --resume to start afresh."))
        return work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stamp.write_text(digest + "\n")
    return work


def _one_run(work, index, train_run, backend, ds, cfg, p, seed, args, *, keep_model, on_epoch):
    """One arm x seed: reused from ``work`` when it finished before, else trained (resuming
    from its checkpoint when one is there) and recorded in ``work``."""
    import json

    from droplab import nn
    from droplab.lab._results import write_json

    done, saved = work / f"run-{index}.json", work / f"run-{index}.model.npz"
    if done.is_file() and (not keep_model or backend != "numpy" or saved.is_file()):
        record = json.loads(done.read_text())
        model = nn.load(saved) if keep_model and backend == "numpy" else None
        if keep_model and model is None:  # the torch model is not kept: train it again for the plots
            record, model = train_run(ds, cfg, p=p, seed=seed)
        return record, model
    if backend == "numpy":
        record, model = train_run(ds, cfg, p=p, seed=seed, on_epoch=on_epoch,
                                  checkpoint=work / f"run-{index}.ckpt.npz", checkpoint_every=args.checkpoint_every)
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
            m, s = row[key]["mean"] * mult, row[key]["std"] * mult
            cells.append(f"{fmt.format(m)} ± {fmt.format(s)}")
        table.add_row(row["arm"], *cells)
    console.print(table)
