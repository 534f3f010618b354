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
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per arm")
    parser.add_argument("--label", default="label", help="label column of a .csv data set")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"),
                        help="train with the NumPy engine or with PyTorch (droplab.torch; same weights, "
                             "masks and shuffling)")


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
        l2=args.l2, model=model).validate(where)
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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from droplab.lab import experiment, plots
    from droplab.lab._results import results_dir, versions, write_json

    import numpy as np

    from droplab import kernels
    from droplab._validate import message as _validate_message

    for dt in (np.float32, np.float64):  # compile the mask kernels before anything is timed
        kernels.apply(np.ones(64, dt), 0.5, (0, 0), 0, 2.0)
    console = Console(stderr=False, quiet=args.quiet)
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
    runs: list[dict] = []
    models_seed0: dict[str, object] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=args.quiet, transient=True, console=console)
    with results_dir(args.out) as tmp:
        with progress:
            task = progress.add_task("compare", total=total)
            for label, cfg, p in arms:
                for s in run_seeds:
                    progress.update(task, description=f"{label}, seed {s}")
                    record, model = train_run(ds, cfg, p=p, seed=s,
                                                         on_epoch=lambda: progress.advance(task))
                    record = {"arm": label, "variant": cfg.variant, **record}
                    runs.append(record)
                    if s == run_seeds[0]:
                        models_seed0[label] = model
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
                              tmp / "learning_curves.png", title=f"{ds.name}: train (dashed) vs validation")
        if int(ds.X_train.reshape(len(ds.X_train), -1).shape[1]) == 2:
            plots.decision_boundary({label: m.predict for label, m in models_seed0.items()}, ds.X_train, ds.y_train,
                                    tmp / "decision_boundary.png", title=f"{ds.name}, seed {run_seeds[0]}")
    _print_table(console, ds, summary, len(run_seeds))
    console.print(f"results written to {args.out}/ (results.json, learning_curves.png"
                  + (", decision_boundary.png)" if ds.X_train.reshape(len(ds.X_train), -1).shape[1] == 2 else ")"))
    return 0


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
