"""``droplab uncertainty``: MC dropout predictive uncertainty, calibration and OOD detection.

It trains (or loads with ``--model``) a dropout MLP, then compares deterministic inference
(weight scaling: dropout off) with MC averaging over T stochastic passes (only the dropout
layers on; see :func:`droplab.nn.mc_predict`) at T in {1, 2, 5, 10, 20, 50, 100}: accuracy,
NLL, Brier score and ECE on the validation set. It then asks whether the uncertainty means
something: the AUROC of predictive entropy and mutual information (BALD) for telling
validation inputs from inputs of a kind the model never saw:

* signals of more than two features (MNIST-1D, digits, ...): ``shuffled`` (validation inputs
  with their feature positions permuted by one fixed permutation: same values, structure
  destroyed) and ``noise`` (Gaussian with the training set's per-feature mean and std);
* 2-D data sets (spiral, moons, circles): ``far`` points, on a ring 1.5-3x the data's radius
  around its centre, and a heat map of entropy and MI over the plane.

The default task (MNIST-1D, 40-256-256-10, p = 0.3, Adam 1e-3, batches of 100, 60 epochs)
takes well under two minutes on two cores. Writes ``results.json``, ``reliability.png``,
``metrics_vs_T.png``, ``ood_scores.png`` and, for 2-D data, ``uncertainty_map.png``.

Reference:
    Gal and Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016. Guo et al., "On
    Calibration of Modern Neural Networks", ICML 2017 (ECE, reliability diagrams).
"""

from __future__ import annotations

import argparse

HELP = "MC dropout predictive uncertainty, calibration and out-of-distribution detection"

DEFAULT_T = "1,2,5,10,20,50,100"


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type, hidden_flag, samples_flag

    parser.description = (HELP + ". Trains a dropout MLP (default: MNIST-1D, 60 epochs, well under 2 minutes "
                          "on 2 cores) or loads one with --model, then compares weight scaling with MC averaging "
                          "over T passes. p is the probability of DROPPING a unit.")
    parser.add_argument("--dataset", default="mnist1d",
                        help="a registered data set (spiral, moons, circles, digits, breast_cancer, mnist1d) "
                             "or a .npz/.csv file")
    parser.add_argument("--model", default=None, metavar="PATH",
                        help="a model file saved with model.save(path): evaluate it instead of training")
    parser.add_argument("--p", type=flag_type("p"), default=0.3,
                        help=f"drop probability after each hidden layer ({bounds_help('p')})")
    parser.add_argument("--input-p", type=flag_type("input_p"), default=0.0,
                        help=f"drop probability on the inputs ({bounds_help('input_p')})")
    parser.add_argument("--variant", default="dropout", help="dropout variant (dropout, classic, ...)")
    parser.add_argument("--hidden", type=hidden_flag, default="256,256",
                        help="hidden layer sizes, comma-separated (each 1 to 8192, at most 64 layers, at most "
                             "2^26 weights between hidden layers: 256 MiB)")
    parser.add_argument("--activation", default="relu", help="relu, leaky_relu, tanh, sigmoid or selu")
    parser.add_argument("--epochs", type=flag_type("epochs"), default=60,
                        help=f"passes over the training data ({bounds_help('epochs')}; 60 keeps the default "
                             "run well under 2 minutes)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), default=100,
                        help=f"mini-batch size ({bounds_help('batch_size')})")
    parser.add_argument("--optimizer", default="adam", help="adam, adamw or sgd (momentum 0.9)")
    parser.add_argument("--lr", type=flag_type("lr"), default=1e-3,
                        help=f"learning rate ({bounds_help('lr')})")
    parser.add_argument("--l2", type=flag_type("l2"), default=0.0,
                        help=f"L2 penalty on every weight matrix ({bounds_help('l2')})")
    parser.add_argument("--samples-list", type=samples_flag, default=DEFAULT_T,
                        help="numbers of MC passes T to compare, comma-separated, each "
                             f"{bounds_help('samples')} (the largest is drawn once; smaller T use its "
                             "first passes)")
    parser.add_argument("--bins", type=flag_type("bins"), default=15,
                        help=f"confidence bins of ECE and the reliability diagram ({bounds_help('bins')})")
    parser.add_argument("--ood-samples", type=flag_type("ood_samples"), default=1000,
                        help=f"inputs per out-of-distribution set ({bounds_help('ood_samples')})")
    parser.add_argument("--label", default="label", help="label column of a .csv data set")


def _parse_ts(text: str) -> list[int]:
    from droplab import _validate

    allowed = "comma-separated positive integers like 1,10,100"
    try:
        ts = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(_validate.message("uncertainty", "samples_list", allowed, text)) from None
    if not ts or any(t < 1 for t in ts):
        raise ValueError(_validate.message("uncertainty", "samples_list", allowed, text))
    return sorted(set(ts))


def run(args: argparse.Namespace) -> int:
    from droplab import _validate, data
    from droplab.lab import experiment, models

    where = "uncertainty"
    ts = _parse_ts(args.samples_list)
    bins = _validate.positive_int(where, "bins", args.bins)
    n_ood = _validate.positive_int(where, "ood_samples", args.ood_samples)
    p = _validate.probability(where, "p", args.p)
    _validate.one_of(where, "variant", args.variant, models.VARIANTS)
    batch = None if args.batch_size == 0 else args.batch_size
    cfg = experiment.RunConfig(
        hidden=models.parse_hidden(args.hidden), activation=args.activation, variant=args.variant,
        input_p=args.input_p, epochs=args.epochs, batch_size=batch, optimizer=args.optimizer, lr=args.lr,
        l2=args.l2).validate(where)
    model = None
    if args.model is not None:
        model = _load_model(args.model)
    options = {"label": args.label} if str(args.dataset).endswith(".csv") else {}
    ds = data.load(args.dataset, **options)
    if model is not None:
        _check_model_fits(model, ds, args.model)
    return _execute(args, ds, cfg, p, ts, bins, n_ood, model)


def _load_model(path: str):
    from pathlib import Path

    from droplab import _validate, nn

    if not Path(path).is_file():
        raise ValueError(_validate.message("--model", "model", "an existing model file (saved with model.save)", path))
    model = nn.load(path)
    if not any(m.is_dropout for m in model.modules()):
        raise ValueError(_validate.message("--model", "model", "a model with at least one dropout layer", path,
                                           "MC dropout needs layers that sample."))
    return model


def _check_model_fits(model, ds, path: str) -> None:
    import numpy as np

    from droplab import _validate
    from droplab.nn.train import _forward_eval

    x = ds.X_val[:2].reshape(2, -1).astype(np.float32)
    try:
        out = _forward_eval(model, x, None)  # eval mode, the layers' modes restored afterwards
    except (ValueError, TypeError) as exc:
        raise ValueError(_validate.message("--model", "model", f"a model taking {ds.name}'s inputs of shape "
                                           f"{tuple(ds.input_shape)}", path, f"({exc})")) from None
    if out.ndim != 2 or out.shape[1] != ds.classes:
        raise ValueError(_validate.message("--model", "model", f"a model with {ds.classes} outputs (the classes "
                                           f"of {ds.name})", path))


# --- out-of-distribution inputs -----------------------------------------------------------


def _ood_sets(X_train, X_val, n: int, seed: int) -> dict:
    """Inputs of kinds the model never saw, as ``{name: (array, description)}``."""
    import numpy as np

    from droplab import _rng

    g = _rng.generator(_rng.seed_sequence(seed, "uncertainty")).spawn(1)[0]
    d = X_train.shape[1]
    if d == 2:
        centre = X_train.mean(axis=0)
        radius = float(np.linalg.norm(X_train - centre, axis=1).max())
        angle = g.uniform(0, 2 * np.pi, n)
        r = radius * g.uniform(1.5, 3.0, n)
        far = centre + np.c_[np.cos(angle), np.sin(angle)] * r[:, None]
        return {"far": (far.astype(np.float32), "points on a ring 1.5-3x the data's radius around its centre")}
    perm = g.permutation(d)
    while d > 1 and np.array_equal(perm, np.arange(d)):
        perm = g.permutation(d)
    rows = g.choice(len(X_val), size=n, replace=n > len(X_val))
    shuffled = X_val[rows][:, perm]
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    noise = mu + sd * g.standard_normal((n, d))
    return {
        "shuffled": (shuffled.astype(np.float32),
                     "validation inputs with the feature positions permuted by one fixed permutation"),
        "noise": (noise.astype(np.float32), "Gaussian noise with the training set's per-feature mean and std"),
    }


# --- the run ----------------------------------------------------------------------------------


def _execute(args, ds, cfg, p: float, ts: list[int], bins: int, n_ood: int, model) -> int:
    import time

    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from droplab import nn
    from droplab.lab import experiment
    from droplab.lab._results import force_flag, results_dir, versions, write_json

    console = Console(quiet=args.quiet)
    X = ds.X_train.reshape(len(ds.X_train), -1).astype(np.float32)
    Xv = ds.X_val.reshape(len(ds.X_val), -1).astype(np.float32)
    yv = ds.y_val
    oods = _ood_sets(X, Xv, n_ood, args.seed)
    t_max = max(ts)
    trained = model is None
    total = (cfg.epochs if trained else 0) + 2 + len(oods) + len(ts)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=args.quiet, transient=True, console=console)
    with results_dir(args.out, "uncertainty", force=force_flag(args)) as tmp:
        with progress:
            task = progress.add_task("training" if trained else "evaluating", total=total)
            if trained:
                record, model = experiment.train_run(ds, cfg, p=p, seed=args.seed,
                                                     on_epoch=lambda: progress.advance(task))
            else:
                record = _loaded_record(model, X, ds.y_train, Xv, yv, args.seed)
            loss = getattr(model, "_loss", None) or nn.SoftmaxCrossEntropy()
            model._loss = loss

            progress.update(task, description="deterministic (weight scaling)")
            det = model.predict(Xv).astype(np.float64)
            inference = [_scores("deterministic", None, det, yv, bins)]
            progress.advance(task)

            progress.update(task, description=f"MC dropout, T={t_max}")
            t0 = time.perf_counter()
            mc = nn.mc_predict(model, Xv, samples=t_max, seed=args.seed, keep_samples=True)
            mc_seconds = time.perf_counter() - t0
            progress.advance(task)
            for t in ts:
                inference.append(_scores("mc", t, mc.samples[:t], yv, bins))
                progress.advance(task)

            ood, ood_mc = [], {}
            for i, (name, (Xo, desc)) in enumerate(oods.items()):
                progress.update(task, description=f"out-of-distribution: {name}")
                mo = nn.mc_predict(model, Xo, samples=t_max, seed=args.seed + 1 + i, keep_samples=False)
                do = model.predict(Xo).astype(np.float64)
                ood_mc[name] = mo
                ood.append(_ood_row(name, desc, mc, mo, det, do, t_max))
                progress.advance(task)

        mc_best = inference[-1]
        summary = [
            {"method": "deterministic (weight scaling)", "T": None, **inference[0]["metrics"]},
            {"method": f"MC dropout, T={t_max}", "T": t_max, **mc_best["metrics"]},
        ]
        for row in summary:
            row["ood_auroc"] = {o["set"]: o["auroc"]["mutual_information" if row["T"] else "deterministic_entropy"]
                                for o in ood}
        results = {
            "command": "uncertainty",
            "config": {"dataset": ds.name, "dataset_description": ds.description, "seed": args.seed, "p": p,
                       "model": args.model, "trained": trained, "samples_list": ts, "bins": bins,
                       "ood_samples": n_ood, "ood_sets": {k: v[1] for k, v in oods.items()},
                       **(cfg.to_dict() if trained else {})},
            "versions": versions(),
            "runs": [{"arm": "dropout", "variant": cfg.variant if trained else None, **record}],
            "inference": inference,
            "ood": ood,
            "mc_seconds": mc_seconds,
            "summary": summary,
        }
        write_json(tmp / "results.json", results)
        files = ["results.json", "reliability.png", "metrics_vs_T.png", "ood_scores.png"]
        _plot_reliability(det, mc.mean, yv, bins, t_max, tmp / "reliability.png", ds.name)
        _plot_vs_t(inference, tmp / "metrics_vs_T.png", ds.name)
        _plot_ood(mc, ood_mc, t_max, tmp / "ood_scores.png", ds.name)
        if X.shape[1] == 2:
            _plot_map(model, X, ds.y_train, oods["far"][0], t_max, args.seed, tmp / "uncertainty_map.png", ds.name)
            files.append("uncertainty_map.png")
    _print_table(console, ds, inference, ood, t_max)
    console.print(f"results written to {args.out}/ ({', '.join(files)})")
    return 0


def _loaded_record(model, X, y, Xv, yv, seed) -> dict:
    loss = getattr(model, "_loss", None)
    from droplab import nn

    loss = loss or nn.SoftmaxCrossEntropy()
    train = model.evaluate(X, y, loss)
    val = model.evaluate(Xv, yv, loss)
    p = max((float(getattr(m, "p", 0.0)) for m in model.modules() if m.is_dropout), default=0.0)
    metrics = {"train_accuracy": train.get("accuracy"), "val_accuracy": val.get("accuracy"),
               "train_loss": train["loss"], "val_loss": val["loss"],
               "gap": train.get("accuracy", 0.0) - val.get("accuracy", 0.0), "seconds_per_epoch": None}
    return {"p": p, "seed": seed, "metrics": metrics, "history": {}}


def _scores(method: str, t, probs, y, bins: int) -> dict:
    from droplab import metrics

    return {"method": method, "T": t, "metrics": {
        "accuracy": metrics.accuracy(probs, y), "nll": metrics.nll(probs, y),
        "brier": metrics.brier(probs, y), "ece": metrics.ece(probs, y, bins=bins)}}


def _ood_row(name, desc, mc_in, mc_out, det_in, det_out, t_max) -> dict:
    from droplab import metrics

    auroc = {
        "entropy": metrics.auroc(mc_in.entropy, mc_out.entropy),
        "mutual_information": metrics.auroc(mc_in.mutual_information, mc_out.mutual_information),
        "variation_ratio": metrics.auroc(mc_in.variation_ratio, mc_out.variation_ratio),
        "deterministic_entropy": metrics.auroc(metrics.predictive_entropy(det_in),
                                               metrics.predictive_entropy(det_out)),
    }
    return {"set": name, "description": desc, "n": int(len(mc_out.mean)), "T": t_max, "auroc": auroc,
            "mean_entropy": {"in": float(mc_in.entropy.mean()), "out": float(mc_out.entropy.mean())},
            "mean_mutual_information": {"in": float(mc_in.mutual_information.mean()),
                                        "out": float(mc_out.mutual_information.mean())}}


# --- pictures ---------------------------------------------------------------------------------


def _plot_reliability(det, mc_mean, y, bins, t_max, path, name) -> None:
    import numpy as np

    from droplab import metrics
    from droplab.lab.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, (label, probs) in zip(axes, [("deterministic (weight scaling)", det), (f"MC dropout, T={t_max}", mc_mean)]):
        r = metrics.reliability(probs, y, bins=bins)
        width = np.diff(r.edges)
        filled = r.count > 0
        ax.bar(r.edges[:-1][filled], r.accuracy[filled], width=width[filled], align="edge", color="#1f77b4",
               edgecolor="k", lw=0.4, label="accuracy")
        acc, conf = r.accuracy[filled], r.confidence[filled]
        ax.bar(r.edges[:-1][filled], np.abs(conf - acc), bottom=np.minimum(acc, conf), width=width[filled],
               align="edge", color="#d62728", alpha=0.35, edgecolor="#d62728", lw=0.4,
               label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{label}\nECE = {r.ece:.4f}, {bins} bins")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{name}: reliability diagram (validation set)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_vs_t(inference, path, name) -> None:
    from droplab.lab.plots import pyplot

    plt = pyplot()
    det = inference[0]["metrics"]
    mc = [r for r in inference if r["method"] == "mc"]
    ts = [r["T"] for r in mc]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("accuracy", "nll", "ece"), ("accuracy", "NLL (nats)", "ECE")):
        ax.plot(ts, [r["metrics"][key] for r in mc], "o-", color="#d62728", label="MC dropout")
        ax.axhline(det[key], color="#1f77b4", ls="--", label="deterministic (weight scaling)")
        ax.set_xscale("log")
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("T (MC passes)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{name}: validation metrics against the number of MC passes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ood(mc_in, outs, t_max, path, name) -> None:
    import numpy as np

    from droplab.lab.plots import COLORS, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, attr, label in zip(axes, ("entropy", "mutual_information"), ("predictive entropy", "mutual information")):
        values = [getattr(mc_in, attr)] + [getattr(r, attr) for r in outs.values()]
        hi = max(float(v.max()) for v in values) or 1.0
        edges = np.linspace(0, hi, 41)
        ax.hist(values[0], bins=edges, density=True, alpha=0.5, color=COLORS[0], label="validation (in)")
        for v, k, c in zip(values[1:], outs, COLORS[1:]):
            ax.hist(v, bins=edges, density=True, alpha=0.5, color=c, label=f"{k} (out)")
        ax.set_xlabel(f"{label} (nats), T={t_max}")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle(f"{name}: uncertainty of in- and out-of-distribution inputs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_map(model, X, y, far, t_max, seed, path, name, resolution: int = 120) -> None:
    import numpy as np

    from droplab import nn
    from droplab.lab.plots import pyplot

    plt = pyplot()
    pts = np.concatenate([X, far])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    r = nn.mc_predict(model, grid, samples=min(t_max, 50), seed=seed + 100, keep_samples=False)
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (label, v) in zip(axes, [("predictive entropy", r.entropy), ("mutual information (BALD)",
                                                                         r.mutual_information)]):
        im = ax.imshow(v.reshape(gx.shape), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto",
                       cmap="viridis")
        fig.colorbar(im, ax=ax, label="nats")
        ax.scatter(X[:, 0], X[:, 1], c=[cmap(int(c) % 10) for c in y], s=5, edgecolors="k", linewidths=0.2)
        ax.scatter(far[:, 0], far[:, 1], marker="x", s=6, c="w", linewidths=0.5, label="far (OOD) points")
        ax.set_title(label)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(f"{name}: MC dropout uncertainty over the plane, T={min(t_max, 50)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _print_table(console, ds, inference, ood, t_max) -> None:
    from rich.table import Table

    table = Table(title=f"droplab uncertainty: {ds.name}, validation set")
    for col in ("inference", "accuracy", "NLL", "Brier", "ECE"):
        table.add_column(col, justify="left" if col == "inference" else "right")
    for r in inference:
        m = r["metrics"]
        label = "deterministic (weight scaling)" if r["T"] is None else f"MC dropout, T={r['T']}"
        table.add_row(label, f"{100 * m['accuracy']:.1f}%", f"{m['nll']:.4f}", f"{m['brier']:.4f}",
                      f"{m['ece']:.4f}")
    console.print(table)
    t2 = Table(title=f"out-of-distribution detection AUROC (MC T={t_max}; 0.5 = chance)")
    for col in ("OOD set", "entropy", "mutual information", "variation ratio", "deterministic entropy"):
        t2.add_column(col, justify="left" if col == "OOD set" else "right")
    for o in ood:
        a = o["auroc"]
        t2.add_row(o["set"], f"{a['entropy']:.3f}", f"{a['mutual_information']:.3f}", f"{a['variation_ratio']:.3f}",
                   f"{a['deterministic_entropy']:.3f}")
    console.print(t2)
