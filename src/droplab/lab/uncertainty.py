"""``droplab uncertainty``: MC dropout predictive uncertainty, calibration and OOD detection.

It trains ``--seeds`` dropout MLPs through the lab's one runner (or loads one with
``--model-file``), then compares deterministic inference
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

Every figure is the mean ± 95% CI over the seeds' networks, and the reading compares MC
averaging with weight scaling paired by seed under the lab's one rule (a difference is claimed
only when n >= 3 and its 95% CI excludes 0), explaining a calibration gap by each method's
mean confidence against its accuracy. The default task (MNIST-1D, 40-256-256-10, p = 0.3,
Adam 1e-3, batches of 100, 60 epochs, 3 seeds) takes well under two minutes on two cores.
Writes ``results.json``, ``reliability.png``, ``metrics_vs_T.png``, ``ood_scores.png`` and,
for 2-D data, ``uncertainty_map.png`` (the plots: the first seed's network).

Reference:
    Gal and Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016. Guo et al., "On
    Calibration of Modern Neural Networks", ICML 2017 (ECE, reliability diagrams).
"""

from __future__ import annotations
from droplab.errors import DroplabError, InvalidValueError

import argparse

HELP = "MC dropout predictive uncertainty, calibration and out-of-distribution detection"

DEFAULT_T = "1,2,5,10,20,50,100"


QUICK = {"epochs": 15}


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type, samples_flag
    from droplab.lab import flags

    parser.description = (HELP + ". Trains dropout MLPs (default: MNIST-1D, 60 epochs, 3 seeds, well under 2 "
                          "minutes on 2 cores) or loads one with --model-file, then compares weight scaling with MC "
                          "averaging over T passes. p is the probability of DROPPING a unit.")
    flags.add(parser, ["dataset", "model", "variant", "p", "input_p", "hidden", "activation", "init", "epochs",
                       "batch_size", "optimizer", "lr", "decay", "l2", "first_l2", "seeds", "label", "workers",
                       "backend", "address", "quick"], defaults={"epochs": 60}, quick=QUICK)
    parser.add_argument("--model-file", default=argparse.SUPPRESS, metavar="PATH",
                        help="a model file saved with model.save(path): evaluate it instead of training "
                             "(--model FILE is the deprecated spelling)")
    parser.add_argument("--samples-list", type=samples_flag, default=DEFAULT_T,
                        help="numbers of MC passes T to compare, comma-separated, each "
                             f"{bounds_help('samples')} (the largest is drawn once; smaller T use its "
                             "first passes)")
    parser.add_argument("--bins", type=flag_type("bins"), default=15,
                        help=f"confidence bins of ECE and the reliability diagram ({bounds_help('bins')})")
    parser.add_argument("--ood-samples", type=flag_type("ood_samples"), default=1000,
                        help=f"inputs per out-of-distribution set ({bounds_help('ood_samples')})")


def _parse_ts(text: str) -> list[int]:
    from droplab import _validate

    allowed = "comma-separated positive integers like 1,10,100"
    try:
        ts = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise InvalidValueError(_validate.message("uncertainty", "samples_list", allowed, text)) from None
    if not ts or any(t < 1 for t in ts):
        raise InvalidValueError(_validate.message("uncertainty", "samples_list", allowed, text))
    return sorted(set(ts))


def run(args: argparse.Namespace) -> int:
    from droplab import _validate
    from droplab.lab import flags, models, runner

    where = "uncertainty"
    flags.resolve(args, where, model_file=True)
    ts = _parse_ts(args.samples_list)
    bins = _validate.positive_int(where, "bins", args.bins)
    n_ood = _validate.positive_int(where, "ood_samples", args.ood_samples)
    p = _validate.probability(where, "p", args.p)
    _validate.one_of(where, "model", args.model, ["mlp"])
    _validate.one_of(where, "variant", args.variant, models.VARIANTS)
    cfg = flags.run_config(args, where)
    model = None
    model_file = getattr(args, "model_file", None)
    if model_file is not None:
        model = _load_model(model_file)
    ds = runner.dataset(cfg)
    if model is not None:
        _check_model_fits(model, ds, model_file)
    return _execute(args, ds, cfg, p, ts, bins, n_ood, model)


def _load_model(path: str):
    from pathlib import Path

    from droplab import _validate, nn

    if not Path(path).is_file():
        raise InvalidValueError(_validate.message("--model-file", "model_file", "an existing model file (saved with "
                                           "model.save)", path))
    try:
        model = nn.load(path)
    except DroplabError as exc:  # nn.load names the path and the fault; say which flag gave it
        exc.args = (f"--model-file: {exc}",) + exc.args[1:]
        raise
    if not any(m.is_dropout for m in model.modules()):
        raise InvalidValueError(_validate.message("--model-file", "model_file", "a model with at least one dropout layer",
                                           path, "MC dropout needs layers that sample."))
    return model


def _check_model_fits(model, ds, path: str) -> None:
    import numpy as np

    from droplab import _validate
    from droplab.nn.train import _forward_eval

    x = ds.X_val[:2].reshape(2, -1).astype(np.float32)
    try:
        out = _forward_eval(model, x, None)  # eval mode, the layers' modes restored afterwards
    except (ValueError, TypeError) as exc:
        raise InvalidValueError(_validate.message("--model-file", "model_file", f"a model taking {ds.name}'s inputs of "
                                           f"shape {tuple(ds.input_shape)}", path, f"({exc})")) from None
    if out.ndim != 2 or out.shape[1] != ds.classes:
        raise InvalidValueError(_validate.message("--model-file", "model_file", f"a model with {ds.classes} outputs (the "
                                           f"classes of {ds.name})", path))


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


def evaluate(model, ds, *, ts: list[int], bins: int, n_ood: int, seed: int) -> dict:
    """Weight scaling and MC averaging at every T on the validation set, and OOD detection:
    ``{"inference": [...], "ood": [...], "confidence": {...}, "mc_seconds": s}``."""
    import time

    import numpy as np

    from droplab import nn

    X = ds.X_train.reshape(len(ds.X_train), -1).astype(np.float32)
    Xv = ds.X_val.reshape(len(ds.X_val), -1).astype(np.float32)
    yv = ds.y_val
    oods = _ood_sets(X, Xv, n_ood, seed)
    t_max = max(ts)
    if getattr(model, "_loss", None) is None:
        model._loss = nn.SoftmaxCrossEntropy()
    det = model.predict(Xv).astype(np.float64)
    inference = [_scores("deterministic", None, det, yv, bins)]
    t0 = time.perf_counter()
    mc = nn.mc_predict(model, Xv, samples=t_max, seed=seed, keep_samples=True)
    mc_seconds = time.perf_counter() - t0
    for t in ts:
        inference.append(_scores("mc", t, mc.samples[:t], yv, bins))
    ood = []
    for i, (name, (Xo, desc)) in enumerate(oods.items()):
        mo = nn.mc_predict(model, Xo, samples=t_max, seed=seed + 1 + i, keep_samples=False)
        ood.append(_ood_row(name, desc, mc, mo, det, model.predict(Xo).astype(np.float64), t_max))
    confidence = {"deterministic": float(det.max(axis=1).mean()), "mc": float(mc.mean.max(axis=1).mean())}
    return {"inference": inference, "ood": ood, "confidence": confidence, "mc_seconds": mc_seconds,
            "ood_sets": {k: v[1] for k, v in oods.items()}}


def _measure(model, ds, task, *, ts, bins, n_ood) -> dict:
    """Runs in the worker after training (droplab.lab.runner): the evaluation of this seed's network."""
    return evaluate(model, ds, ts=ts, bins=bins, n_ood=n_ood, seed=task.seed)


_METRICS = (("accuracy (%)", "accuracy", 100, 1), ("NLL", "nll", 1, 4), ("Brier", "brier", 1, 4),
            ("ECE", "ece", 1, 4))


def _execute(args, ds, cfg, p: float, ts: list[int], bins: int, n_ood: int, model) -> int:
    import functools

    import numpy as np
    from rich.console import Console

    from droplab.lab import runner, stats, tables
    from droplab.lab._results import done_line, force_flag, results_dir, write_results

    console = Console(quiet=args.quiet)
    trained = model is None
    t_max = max(ts)
    seeds = [args.seed + i for i in range(args.seeds)] if trained else [args.seed]
    with results_dir(args.out, "uncertainty", force=force_flag(args)) as tmp:
        if trained:
            measure = functools.partial(_measure, ts=ts, bins=bins, n_ood=n_ood)
            tasks = [runner.Task(runner.run_key({"config": cfg.to_dict(), "p": p}, s), cfg, p, s,
                                 {"arm": "dropout", "variant": cfg.variant}, keep_model=s == seeds[0],
                                 measure=measure) for s in seeds]
            journal = runner.Journal.hidden(args.out, {"command": "uncertainty", "runs": [t.key for t in tasks],
                                                       "ts": ts, "bins": bins, "ood": n_ood}, "uncertainty")
            ran = runner.execute(tasks, workers=args.workers, backend_name=args.backend, address=args.address,
                                 journal=journal, console=console, quiet=args.quiet, description="uncertainty")
            runs = ran.records
            model = ran.models.get(tasks[0].key)
        else:
            journal = None
            X = ds.X_train.reshape(len(ds.X_train), -1).astype(np.float32)
            Xv = ds.X_val.reshape(len(ds.X_val), -1).astype(np.float32)
            with console.status("evaluating the model file"):
                record = _loaded_record(model, X, ds.y_train, Xv, ds.y_val, args.seed)
                record.update(evaluate(model, ds, ts=ts, bins=bins, n_ood=n_ood, seed=args.seed))
            runs = [{"arm": "loaded", "variant": None, **record}]
        good = [r for r in runs if r.get("inference")]
        first = good[0]
        summary = []
        for i, row in enumerate(first["inference"]):
            label = "deterministic (weight scaling)" if row["T"] is None else f"MC dropout, T={row['T']}"
            summary.append({"method": label, "T": row["T"], **{
                k: stats.summary([r["inference"][i]["metrics"][k] for r in good]) for _, k, _, _ in _METRICS}})
        for row in summary:
            key = "mutual_information" if row["T"] else "deterministic_entropy"
            row["ood_auroc"] = {o["set"]: stats.summary([r["ood"][j]["auroc"][key] for r in good])
                                for j, o in enumerate(first["ood"])}
        ood_rows = [{"set": o["set"], **{k: stats.summary([r["ood"][j]["auroc"][k] for r in good])
                                         for k in o["auroc"]}} for j, o in enumerate(first["ood"])]
        n = len(good)
        t1 = tables.table(f"droplab uncertainty: {ds.name}, validation set, {n} network(s)",
                          ["inference", *(h for h, *_ in _METRICS)],
                          [[row["method"], *(stats.fmt(row[k], sc, d) for _, k, sc, d in _METRICS)] for row in summary],
                          note=stats.legend(n), drop=("Brier", "NLL"))
        names = (("entropy", "entropy"), ("mutual info", "mutual_information"), ("var. ratio", "variation_ratio"),
                 ("det. entropy", "deterministic_entropy"))
        t2 = tables.table(f"out-of-distribution AUROC (MC T={t_max}; 0.5 = chance)", ["OOD set", *(h for h, _ in names)],
                          [[o["set"], *(stats.fmt(o[k], 1, 3) for _, k in names)] for o in ood_rows],
                          note=stats.legend(n), drop=("var. ratio",))
        reading = _reading(good, t_max, trained)
        files = ["results.json", "reliability.png", "metrics_vs_T.png", "ood_scores.png"]
        write_results(tmp, "uncertainty", config={
            "dataset": ds.name, "dataset_description": ds.description, "seed": args.seed, "seeds": seeds, "p": p,
            "model": cfg.model, "model_file": getattr(args, "model_file", None), "trained": trained,
            "samples_list": ts, "bins": bins, "ood_samples": n_ood, "ood_sets": first["ood_sets"],
            **(cfg.to_dict() if trained else {})},
            runs=runs, summary=summary, tables=[t1, t2], reading=reading, statistics=stats.HEADER,
            inference=first["inference"], ood=first["ood"], mc_seconds=first["mc_seconds"], ood_summary=ood_rows)
        _plots(tmp, model, ds, first, ts, bins, args.seed, files)
    if journal is not None:
        journal.close()
    tables.show(console, t1)
    tables.show(console, t2)
    for line in reading:
        console.print(f"- {line}", highlight=False, markup=False)
    done_line(console, args.out, files)
    return 0


def _plots(tmp, model, ds, first, ts, bins, seed, files) -> None:
    import numpy as np

    from droplab import nn

    X = ds.X_train.reshape(len(ds.X_train), -1).astype(np.float32)
    Xv = ds.X_val.reshape(len(ds.X_val), -1).astype(np.float32)
    t_max = max(ts)
    oods = _ood_sets(X, Xv, first["ood"][0]["n"], seed)  # the sets the first seed was measured on
    det = model.predict(Xv).astype(np.float64)
    mc = nn.mc_predict(model, Xv, samples=t_max, seed=seed, keep_samples=False)
    ood_mc = {name: nn.mc_predict(model, Xo, samples=t_max, seed=seed + 1 + i, keep_samples=False)
              for i, (name, (Xo, _)) in enumerate(oods.items())}
    _plot_reliability(det, mc.mean, ds.y_val, bins, t_max, tmp / "reliability.png", ds.name)
    _plot_vs_t(first["inference"], tmp / "metrics_vs_T.png", ds.name)
    _plot_ood(mc, ood_mc, t_max, tmp / "ood_scores.png", ds.name)
    if X.shape[1] == 2:
        _plot_map(model, X, ds.y_train, oods["far"][0], t_max, seed, tmp / "uncertainty_map.png", ds.name)
        files.append("uncertainty_map.png")


def _reading(good: list[dict], t_max: int, trained: bool) -> list[str]:
    """MC averaging (T = t_max) against weight scaling, paired by seed, and why they differ."""
    from droplab.lab import stats

    def per_seed(method_index: int, key: str) -> dict:
        return {r["seed"]: r["inference"][method_index]["metrics"][key] for r in good}

    last = len(good[0]["inference"]) - 1
    out = []
    unit = "seed" if trained else "model"
    for key, what, scale, unit_text, digits in (("ece", "ECE", 1, "", 4), ("nll", "NLL", 1, "", 4),
                                                ("accuracy", "accuracy", 100, " points", 1)):
        v = stats.verdict(stats.paired(per_seed(0, key), per_seed(last, key)))
        out.append(stats.sentence(v, subject=f"MC dropout (T={t_max})", what=f"{what} relative to weight scaling",
                                  scale=scale, unit=unit_text, digits=digits, unit_word=unit) + ".")
    conf = {k: stats.summary([r["confidence"][k] for r in good]) for k in ("deterministic", "mc")}
    acc = {k: stats.summary([r["inference"][i]["metrics"]["accuracy"] for r in good])
           for k, i in (("deterministic", 0), ("mc", last))}

    def side(k: str) -> str:
        gap = conf[k]["mean"] - acc[k]["mean"]
        word = "over-confident" if gap > 0 else "under-confident"
        return (f"{stats.fmt(conf[k], 100)}% mean confidence against {stats.fmt(acc[k], 100)}% accuracy "
                f"({word} by {100 * abs(gap):.1f} points)")

    out.append(f"why: weight scaling shows {side('deterministic')}; MC averaging over {t_max} masks shows "
               f"{side('mc')}. Averaging the softmax over masks lowers the top probability, so it cures "
               "over-confidence and creates under-confidence: whichever method's confidence is closer to its "
               "accuracy has the lower ECE.")
    if not trained:
        out.append("one model file: the figures are this network's; no claim is made across training seeds.")
    return out


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
    from droplab.lab.plots import subplots, tight_layout

    fig, axes = subplots(1, 2, figsize=(10, 4.4))
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
    tight_layout(fig)
    fig.savefig(path, dpi=110)


def _plot_vs_t(inference, path, name) -> None:
    from droplab.lab.plots import subplots, tight_layout

    det = inference[0]["metrics"]
    mc = [r for r in inference if r["method"] == "mc"]
    ts = [r["T"] for r in mc]
    fig, axes = subplots(1, 3, figsize=(13, 3.8))
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
    tight_layout(fig)
    fig.savefig(path, dpi=110)


def _plot_ood(mc_in, outs, t_max, path, name) -> None:
    import numpy as np

    from droplab.lab.plots import COLORS, subplots, tight_layout

    fig, axes = subplots(1, 2, figsize=(11, 4))
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
    tight_layout(fig)
    fig.savefig(path, dpi=110)


def _plot_map(model, X, y, far, t_max, seed, path, name, resolution: int = 120) -> None:
    import numpy as np

    from matplotlib import colormaps

    from droplab import nn
    from droplab.lab.plots import subplots, tight_layout

    pts = np.concatenate([X, far])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    r = nn.mc_predict(model, grid, samples=min(t_max, 50), seed=seed + 100, keep_samples=False)
    cmap = colormaps["tab10"]
    fig, axes = subplots(1, 2, figsize=(11, 4.6))
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
    tight_layout(fig)
    fig.savefig(path, dpi=110)
