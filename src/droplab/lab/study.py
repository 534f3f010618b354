"""``droplab study NAME``: canned, reproducible experiments that answer the classic questions.

``p`` is always the probability that a unit is DROPPED (not the keep probability).

=================  =====================================================================
name               question
=================  =====================================================================
p-choice           which p? validation accuracy against p on mnist1d, spiral and digits
where              dropout on the input, on the hidden layers, or both?
batchnorm-order    dropout before or after BatchNorm? with the "variance shift" of
                   Li et al. 2019 measured: BN's input variance in train vs eval mode
cost               how much slower is an epoch with dropout, and how does it scale with width?
textbook           the NNFS spiral setting (64 units, p = 0.1, Adam 0.05, decay 5e-5), where
                   dropout hurts because the network underfits
bug-gallery        the classic bugs, measured: the randn-for-rand mask, a dropout whose output
                   is never used, missing rescaling, and the NaN at p = 1
=================  =====================================================================

Each study is a function ``study(scale, seed, console) -> StudyResult``; ``scale`` is
``"full"`` (the default), ``"quick"`` (``--quick``: under two minutes on 2 cores) or
``"tiny"`` (seconds; for the test suite only). A study writes ``results.json``, ``table.md``
and its plots into the results folder and prints a table and a short reading of the numbers.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from droplab import _validate, nn

__all__ = ["HELP", "STUDIES", "StudyResult", "mean_ci", "randn_mask_drop_rate", "run_study"]

HELP = "canned experiments: which p, where, BatchNorm order, cost, textbook, bug gallery"
SCALES = ("full", "quick", "tiny")


@dataclass
class StudyResult:
    """What a study hands back: everything its results folder and its printout hold."""

    config: dict
    runs: list[dict]
    summary: list[dict]
    columns: list[tuple[str, str]]  # (header, key of a summary row) for the table
    reading: list[str]
    plots: dict[str, Callable] = field(default_factory=dict)  # file name -> fn(path)
    extra: dict = field(default_factory=dict)  # more keys for results.json


# ------------------------------------------------------------------------------- helpers


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of the 95% Student-t confidence interval, and n (half-width 0 when n = 1).

    Example:
        >>> m, h, n = mean_ci([1.0, 2.0, 3.0])
        >>> m, round(h, 3), n
        (2.0, 2.484, 3)
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2:
        return float(v.mean()), 0.0, n
    from scipy import stats

    return float(v.mean()), float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def _fmt_ci(values, scale: float = 100.0, digits: int = 1) -> str:
    m, h, _ = mean_ci(values)
    return f"{m * scale:.{digits}f} ± {h * scale:.{digits}f}"


def randn_mask_drop_rate(p: float) -> float:
    """The drop rate of the bug ``mask = randn(shape) < 1 - p`` (standard NORMAL, not uniform).

    The mask keeps an element when ``Z < 1 - p`` with ``Z ~ N(0, 1)``, which happens with
    probability ``Phi(1 - p)``; the drop rate is therefore ``1 - Phi(1 - p)``, not ``p``.
    ``p``: the intended drop probability (not the keep probability).

    Example:
        >>> round(randn_mask_drop_rate(0.5), 4)   # 1 - Phi(0.5): about 0.31, not 0.5
        0.3085
        >>> round(randn_mask_drop_rate(0.0), 4)   # even p = 0 drops 16% of the units
        0.1587
    """
    return 1.0 - 0.5 * (1.0 + math.erf((1.0 - p) / math.sqrt(2.0)))


def _flat(ds):
    return ds.X_train.reshape(len(ds.X_train), -1), ds.X_val.reshape(len(ds.X_val), -1)


def _fit(model: nn.Module, ds, *, epochs: int, batch_size: int | None, optimizer: nn.Optimizer,
         callbacks=()) -> dict:
    """Train and measure like ``experiment.train_run`` (train accuracy in eval mode)."""
    loss = nn.SoftmaxCrossEntropy()
    X, Xv = _flat(ds)
    t0 = time.perf_counter()
    history = model.fit(X, ds.y_train, loss=loss, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                        validation_data=(Xv, ds.y_val), verbose=False, callbacks=list(callbacks))
    seconds = (time.perf_counter() - t0) / max(1, len(history["loss"]))
    tr, va = model.evaluate(X, ds.y_train, loss), model.evaluate(Xv, ds.y_val, loss)
    return {"metrics": {"train_accuracy": tr["accuracy"], "val_accuracy": va["accuracy"], "train_loss": tr["loss"],
                        "val_loss": va["loss"], "gap": tr["accuracy"] - va["accuracy"],
                        "seconds_per_epoch": seconds},
            "history": history}


def _mlp(inputs: int, hidden, classes: int, *, p: float = 0.0, input_p: float = 0.0, seed=None,
         dropout: Callable[[float], nn.Module] = nn.Dropout) -> nn.Sequential:
    """``Dropout(input_p) -> [Dense -> ReLU -> dropout(p)] per hidden size -> Dense``.

    The dropout layers are always present (identity at p = 0), so every arm built with the same
    seed starts from bit-identical weights.
    """
    layers: list[nn.Module] = [nn.Dropout(input_p)]
    width = inputs
    for h in hidden:
        layers += [nn.Dense(width, h), nn.ReLU(), dropout(p)]
        width = h
    layers.append(nn.Dense(width, classes, init="glorot"))
    return nn.Sequential(*layers, seed=seed)


def _arm_summary(runs: list[dict], arms: list[str], key: str = "arm") -> list[dict]:
    rows = []
    for arm in arms:
        mine = [r for r in runs if r[key] == arm]
        row = {key: arm, "seeds": len(mine)}
        for k in ("train_accuracy", "val_accuracy", "gap", "val_loss"):
            m, h, _ = mean_ci([r["metrics"][k] for r in mine])
            row[k] = {"mean": m, "ci95": h}
        row["train acc (%)"] = _fmt_ci([r["metrics"]["train_accuracy"] for r in mine])
        row["val acc (%)"] = _fmt_ci([r["metrics"]["val_accuracy"] for r in mine])
        row["gap (points)"] = _fmt_ci([r["metrics"]["gap"] for r in mine])
        row["val loss"] = _fmt_ci([r["metrics"]["val_loss"] for r in mine], 1.0, 3)
        rows.append(row)
    return rows


def _paired(runs: list[dict], arm: str, base: str, key: str = "arm", metric: str = "val_accuracy") -> str:
    """``X ± Y points over n seeds`` for ``arm - base``, paired by seed."""
    a = {r["seed"]: r["metrics"][metric] for r in runs if r[key] == arm}
    b = {r["seed"]: r["metrics"][metric] for r in runs if r[key] == base}
    seeds = sorted(set(a) & set(b))
    m, h, n = mean_ci([a[s] - b[s] for s in seeds])
    return f"{100 * m:+.1f} ± {100 * h:.1f} points (95% CI, {n} seed{'s' if n != 1 else ''}, paired)"


def _adam(lr=1e-3, decay=0.0):
    return nn.Adam(lr, decay=decay)


# ------------------------------------------------------------------------------- p-choice

_P_CHOICE = {
    # scale: (p grid, seeds, {dataset: (hidden, epochs, batch, lr, load options)})
    "full": ((0.0, 0.1, 0.2, 0.3, 0.5, 0.7), 3, {
        "mnist1d": ((256, 256), 100, 100, 1e-3, {}),
        "spiral": ((128,), 500, None, 0.02, {}),
        "digits": ((128,), 60, 64, 1e-3, {})}),
    "quick": ((0.0, 0.2, 0.5), 2, {
        "mnist1d": ((128, 128), 15, 100, 2e-3, {}),
        "spiral": ((64,), 150, None, 0.02, {}),
        "digits": ((64,), 15, 64, 2e-3, {})}),
    "tiny": ((0.0, 0.5), 2, {
        "spiral": ((16,), 3, None, 0.02, {"samples": 100, "val_samples": 50}),
        "digits": ((16,), 2, 256, 2e-3, {})}),
}


def study_p_choice(scale: str, seed: int, console) -> StudyResult:
    """Validation accuracy against p, on mnist1d (the default data) and on spiral and digits.

    The grid points are :mod:`droplab.lab.sweep`'s (its knobs, ``run_config`` and 95% CI
    summary), so a record here is a sweep record; the runs go one after another through
    :func:`droplab.lab.experiment.train_run`.
    """
    from droplab import data
    from droplab.lab import experiment, sweep

    grid_p, n_seeds, sets = _P_CHOICE[scale]
    seeds = [seed + i for i in range(n_seeds)]
    runs, summary, grids = [], [], {}
    for name, (hidden, epochs, batch, lr, options) in sets.items():
        ds = data.load(name, **options)
        grid = {k: list(v) for k, v in sweep.DEFAULTS.items()}
        grid.update(dataset=[name], hidden=[list(hidden)], epochs=[epochs], batch_size=[batch or 0], lr=[lr],
                    p=list(grid_p))
        grids[name] = grid
        points = sweep.expand(grid)
        for point in points:
            cfg = sweep.run_config(point).validate("study p-choice")
            for s in seeds:
                with console.status(f"p-choice: {name}, p={point['p']:g}, seed {s}"):
                    record, _ = experiment.train_run(ds, cfg, p=point["p"], seed=s)
                runs.append({"key": sweep.run_key(point, s), **point, "arm": f"{name} p={point['p']:g}", **record})
        rows = sweep.summarize_points(runs, points)
        for row in rows:
            mine = [r for r in runs if r["arm"] == f"{name} p={row['p']:g}"]
            row["arm"] = f"{name} p={row['p']:g}"
            row["train acc (%)"] = _fmt_ci([r["metrics"]["train_accuracy"] for r in mine])
            row["val acc (%)"] = _fmt_ci([r["metrics"]["val_accuracy"] for r in mine])
            row["gap (points)"] = _fmt_ci([r["metrics"]["gap"] for r in mine])
            row["val loss"] = _fmt_ci([r["metrics"]["val_loss"] for r in mine], 1.0, 3)
            row["val_accuracy"]["ci95"] = row["val_accuracy"]["ci95"] or 0.0
            row["gap"]["ci95"] = row["gap"]["ci95"] or 0.0
        summary += rows
    reading = []
    for name in sets:
        rows = [r for r in summary if r["dataset"] == name]
        best = max(rows, key=lambda r: r["val_accuracy"]["mean"])
        line = f"{name}: best p = {best['p']:g} (val acc {best['val acc (%)']}%)"
        if best["p"] != 0:
            line += f"; against p = 0: {_paired(runs, best['arm'], f'{name} p=0')}"
        else:
            line += "; no p > 0 beat p = 0 on average"
        close = [r for r in rows if r["p"] != best["p"] and
                 r["val_accuracy"]["mean"] + r["val_accuracy"]["ci95"]
                 >= best["val_accuracy"]["mean"] - best["val_accuracy"]["ci95"]]
        if close:
            listed = ", ".join(f"{r['p']:g}" for r in close)
            line += f"; p = {listed} within the CIs (not distinguishable)"
        reading.append(line + ".")
    config = {"datasets": {k: {"hidden": list(v[0]), "epochs": v[1], "batch_size": v[2], "lr": v[3],
                               "options": v[4]} for k, v in sets.items()},
              "p_grid": list(grid_p), "seeds": seeds, "optimizer": "adam", "grids": grids}

    def plot(path):
        _plot_p_choice(summary, list(sets), path)

    return StudyResult(config, runs, summary, [("dataset", "dataset"), ("p", "p"), ("train acc (%)", "train acc (%)"),
                                               ("val acc (%)", "val acc (%)"), ("gap (points)", "gap (points)"),
                                               ("val loss", "val loss")],
                       reading, {"p_choice.png": plot})


def _plot_p_choice(summary, datasets, path) -> None:
    from droplab.lab.plots import COLORS, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, color in zip(datasets, COLORS):
        rows = [r for r in summary if r["dataset"] == name]
        ps = [r["p"] for r in rows]
        for ax, key in zip(axes, ("val_accuracy", "gap")):
            ax.errorbar(ps, [100 * r[key]["mean"] for r in rows], yerr=[100 * r[key]["ci95"] for r in rows],
                        marker="o", capsize=3, color=color, label=name)
    axes[0].set_ylabel("validation accuracy (%)")
    axes[1].set_ylabel("train - validation accuracy (points)")
    for ax in axes:
        ax.set_xlabel("p (drop probability)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("which p? mean ± 95% CI over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------- where

_WHERE = {
    # scale: (dataset, load options, hidden, epochs, batch, lr, seeds)
    "full": ("mnist1d", {}, (256, 256), 100, 100, 1e-3, 3),
    "quick": ("mnist1d", {}, (128, 128), 15, 100, 2e-3, 2),
    "tiny": ("spiral", {"samples": 100, "val_samples": 50}, (16, 16), 3, None, 0.02, 2),
}
_WHERE_ARMS = (("none", 0.0, 0.0), ("input (p=0.2)", 0.2, 0.0), ("hidden (p=0.5)", 0.0, 0.5),
               ("both (0.2 / 0.5)", 0.2, 0.5))


def study_where(scale: str, seed: int, console) -> StudyResult:
    """Dropout on the input (p = 0.2), on the hidden layers (p = 0.5), or both (Srivastava 2014's choice)."""
    from droplab import data

    name, options, hidden, epochs, batch, lr, n_seeds = _WHERE[scale]
    ds = data.load(name, **options)
    seeds = [seed + i for i in range(n_seeds)]
    X, _ = _flat(ds)
    runs = []
    for arm, input_p, p in _WHERE_ARMS:
        for s in seeds:
            with console.status(f"where: {arm}, seed {s}"):
                model = _mlp(X.shape[1], hidden, ds.classes, p=p, input_p=input_p, seed=s)
                rec = _fit(model, ds, epochs=epochs, batch_size=batch, optimizer=_adam(lr))
            runs.append({"arm": arm, "input_p": input_p, "p": p, "seed": s, **rec})
    arms = [a[0] for a in _WHERE_ARMS]
    summary = _arm_summary(runs, arms)
    best = max(summary, key=lambda r: r["val_accuracy"]["mean"])
    reading = [f"{ds.name}: best placement = {best['arm']} (val acc {best['val acc (%)']}%)."]
    for arm in arms[1:]:
        row = next(r for r in summary if r["arm"] == arm)
        reading.append(f"{arm}: {_paired(runs, arm, 'none')} against no dropout; train-val gap "
                       f"{row['gap (points)']} points.")
    none = summary[0]
    under = [r for r in summary[1:] if r["train_accuracy"]["mean"] < none["train_accuracy"]["mean"] - 0.05
             and r["val_accuracy"]["mean"] < none["val_accuracy"]["mean"]]
    if under:
        reading.append(
            f"after {epochs} epochs, {', '.join(r['arm'] for r in under)} still underfit(s): train accuracy "
            + ", ".join(f"{r['train acc (%)']}%" for r in under) + f" against {none['train acc (%)']}% without "
            "dropout. Dropout slows fitting; it pays off only once the network without it overfits "
            "(large train-val gap), so judge it at the full setting (without --quick).")
    config = {"dataset": ds.name, "hidden": list(hidden), "epochs": epochs, "batch_size": batch, "lr": lr,
              "optimizer": "adam", "seeds": seeds,
              "arms": [{"arm": a, "input_p": i, "p": p} for a, i, p in _WHERE_ARMS]}

    def plot(path):
        from droplab.lab.plots import learning_curves

        learning_curves({a: [r["history"] for r in runs if r["arm"] == a] for a in arms}, path,
                        title=f"{ds.name}: where to put dropout (train dashed, validation solid)")

    cols = [("arm", "arm"), ("train acc (%)", "train acc (%)"), ("val acc (%)", "val acc (%)"),
            ("gap (points)", "gap (points)"), ("val loss", "val loss")]
    return StudyResult(config, runs, summary, cols, reading, {"learning_curves.png": plot})


# ------------------------------------------------------------------------------- batchnorm-order

_BN = {
    "full": ("mnist1d", {}, 256, 60, 100, 1e-3, 3, 0.5),
    "quick": ("mnist1d", {}, 128, 12, 100, 2e-3, 2, 0.5),
    "tiny": ("spiral", {"samples": 100, "val_samples": 50}, 16, 3, 100, 0.02, 2, 0.5),
}
_BN_ARMS = ("no dropout", "dropout before BN", "dropout after BN")


def _bn_net(arm: str, inputs: int, width: int, classes: int, p: float, seed: int) -> nn.Sequential:
    """Two hidden layers ``Dense -> BN -> ReLU``; where the dropout layers sit is the arm.

    * ``dropout before BN``: dropout after each hidden block, so the second BN's input
      (through a Dense) carries the dropout noise in training but not in eval;
    * ``dropout after BN``: dropout only after the last BN (Li et al. 2019's advice);
    * ``no dropout``: the same layers with p = 0.
    The layer list has the same length in every arm, so a seed gives the same initial weights.
    """
    from droplab.nn.norm import BatchNorm1d

    p1 = p if arm == "dropout before BN" else 0.0
    p2 = p if arm != "no dropout" else 0.0
    return nn.Sequential(nn.Dense(inputs, width), BatchNorm1d(width), nn.ReLU(), nn.Dropout(p1),
                         nn.Dense(width, width), BatchNorm1d(width), nn.ReLU(), nn.Dropout(p2),
                         nn.Dense(width, classes, init="glorot"), seed=seed)


def variance_shift(model: nn.Sequential, X_train: np.ndarray, X_eval: np.ndarray) -> list[dict]:
    """For each BatchNorm1d layer: its input variance in train mode, its running variance, and its
    input variance in eval mode (dropout off), averaged over features.

    Train mode means the dropout layers before it sample masks (BN layers before it use batch
    statistics); a copy of the model is used so no running statistic changes. ``shift`` is
    ``eval variance / running variance``: 1 without dropout before the layer, below 1 when
    dropout inflated the variance BN learnt in training (Li et al. 2019).
    """
    from droplab.nn.norm import BatchNorm1d

    out = []
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, BatchNorm1d):
            continue
        feats = {}
        for mode, X in (("train", X_train), ("eval", X_eval)):
            twin = copy.deepcopy(model)
            twin.train(mode == "train")
            x = X
            for prev in twin.layers[:i]:
                x = prev.forward(x)
            feats[mode] = np.asarray(x, dtype=np.float64).var(axis=0, ddof=1)
        running = np.asarray(layer.running_var, dtype=np.float64)
        out.append({"layer": i, "train_input_var": float(feats["train"].mean()),
                    "running_var": float(running.mean()), "eval_input_var": float(feats["eval"].mean()),
                    "shift": float(np.mean(feats["eval"] / running)),
                    "train_over_running": float(np.mean(feats["train"] / running))})
    return out


def study_batchnorm_order(scale: str, seed: int, console) -> StudyResult:
    """Dropout before vs after BatchNorm, and the variance shift of Li et al. 2019."""
    from droplab import data

    name, options, width, epochs, batch, lr, n_seeds, p = _BN[scale]
    ds = data.load(name, **options)
    X, Xv = _flat(ds)
    seeds = [seed + i for i in range(n_seeds)]
    runs = []
    for arm in _BN_ARMS:
        for s in seeds:
            with console.status(f"batchnorm-order: {arm}, seed {s}"):
                model = _bn_net(arm, X.shape[1], width, ds.classes, p, s)
                rec = _fit(model, ds, epochs=epochs, batch_size=batch, optimizer=_adam(lr))
                rec["variance_shift"] = variance_shift(model, X, Xv)
            runs.append({"arm": arm, "p": p, "seed": s, **rec})
    summary = _arm_summary(runs, list(_BN_ARMS))
    for row in summary:
        mine = [r for r in runs if r["arm"] == row["arm"]]
        second = [r["variance_shift"][1] for r in mine]  # the BN after the first dropout position
        row["BN2 var train/running"] = _fmt_ci([v["train_over_running"] for v in second], 1.0, 3)
        row["BN2 var eval/running"] = _fmt_ci([v["shift"] for v in second], 1.0, 3)
        row["shift"] = {k: mean_ci([v[k] for v in second])[0] for k in ("train_over_running", "shift")}
    before = next(r for r in summary if r["arm"] == "dropout before BN")
    after = next(r for r in summary if r["arm"] == "dropout after BN")
    none = next(r for r in summary if r["arm"] == "no dropout")
    keep = 1 - p
    reading = [
        f"variance shift: with dropout (p={p:g}) before the second BN, that BN's input variance in eval mode is "
        f"{before['BN2 var eval/running']} of the running variance it normalises by (no dropout: "
        f"{none['BN2 var eval/running']}; dropout after BN: {after['BN2 var eval/running']}). In train mode the "
        f"ratio is {before['BN2 var train/running']}: BN learnt the dropout-inflated variance, and at test time "
        f"it divides by too large a number (for a unit with mean m and variance s^2, inverted dropout gives "
        f"variance (s^2 + m^2)/{keep:g} - m^2 in training).",
        f"accuracy: dropout before BN {before['val acc (%)']}%, after BN {after['val acc (%)']}%, none "
        f"{none['val acc (%)']}%; after - before: {_paired(runs, 'dropout after BN', 'dropout before BN')}.",
    ]
    config = {"dataset": ds.name, "width": width, "epochs": epochs, "batch_size": batch, "lr": lr, "p": p,
              "optimizer": "adam", "seeds": seeds, "arms": list(_BN_ARMS)}

    def plot(path):
        _plot_bn(runs, path)

    cols = [("arm", "arm"), ("val acc (%)", "val acc (%)"), ("gap (points)", "gap (points)"),
            ("val loss", "val loss"), ("BN2 var train/running", "BN2 var train/running"),
            ("BN2 var eval/running", "BN2 var eval/running")]
    return StudyResult(config, runs, summary, cols, reading, {"variance_shift.png": plot})


def _plot_bn(runs, path) -> None:
    from droplab.lab.plots import COLORS, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(_BN_ARMS))
    for j, (key, label) in enumerate((("train_input_var", "train-mode input var"), ("running_var", "running var"),
                                      ("eval_input_var", "eval-mode input var"))):
        vals = [np.mean([r["variance_shift"][1][key] for r in runs if r["arm"] == a]) for a in _BN_ARMS]
        axes[0].bar(x + (j - 1) * 0.27, vals, 0.27, color=COLORS[j], label=label)
    axes[0].set_xticks(x, _BN_ARMS, fontsize=8)
    axes[0].set_ylabel("second BN: mean variance of its input")
    axes[0].legend(fontsize=8)
    acc = [[100 * r["metrics"]["val_accuracy"] for r in runs if r["arm"] == a] for a in _BN_ARMS]
    axes[1].bar(x, [np.mean(a) for a in acc], color=COLORS[3], yerr=[np.std(a) for a in acc], capsize=3)
    lo = min(min(a) for a in acc)
    axes[1].set_ylim(max(0, lo - 5), 100 if max(max(a) for a in acc) > 95 else max(max(a) for a in acc) + 3)
    axes[1].set_xticks(x, _BN_ARMS, fontsize=8)
    axes[1].set_ylabel("validation accuracy (%)")
    fig.suptitle("dropout before vs after BatchNorm (variance shift, Li et al. 2019)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------- cost

_COST = {
    # widths, timed epochs per arm, repeats (alternating arms), rows of data
    "full": ((64, 128, 256, 512, 1024, 2048), 10, 3, 3000),
    "quick": ((64, 256, 1024), 6, 2, 3000),
    "tiny": ((16, 32), 2, 1, 300),
}


class _EpochTimer:
    """Wall-clock and process CPU seconds of every epoch (CPU time is steadier on a shared machine)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def on_epoch_begin(self, epoch, model) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs, model) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.cpu.append(time.process_time() - self._c0)


def study_cost(scale: str, seed: int, console) -> StudyResult:
    """Time per training epoch with (p = 0.5) and without dropout on spiral-shaped data, against width."""
    from droplab import data, kernels

    widths, epochs, repeats, rows = _COST[scale]
    X, y = data.spiral(rows // 3, 3, seed=seed)
    for dt in (np.float32, np.float64):  # compile the mask kernels before anything is timed
        kernels.apply(np.ones(64, dt), 0.5, (0, 0), 0, 2.0)
    runs = []
    for w in widths:
        for r in range(repeats):
            for p in (0.0, 0.5):  # alternate the arms so load changes hit both
                with console.status(f"cost: width {w}, p={p:g}, repeat {r + 1}"):
                    model = nn.Sequential(nn.Dense(2, w), nn.ReLU(), nn.Dropout(p), nn.Dense(w, 3), seed=seed)
                    timer = _EpochTimer()
                    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=_adam(0.02), epochs=epochs + 1,
                              verbose=False, callbacks=[timer])
                runs.append({"width": w, "p": p, "repeat": r, "seed": seed,  # the first epoch is warm-up
                             "epoch_seconds": timer.times[1:], "epoch_cpu_seconds": timer.cpu[1:]})
    summary = []
    for w in widths:
        t, c = ({p: float(np.median([s for r in runs if r["width"] == w and r["p"] == p for s in r[key]]))
                 for p in (0.0, 0.5)} for key in ("epoch_seconds", "epoch_cpu_seconds"))
        summary.append({"width": w, "ms/epoch, no dropout": f"{1000 * t[0.0]:.2f}",
                        "ms/epoch, p=0.5": f"{1000 * t[0.5]:.2f}", "ratio": f"{t[0.5] / t[0.0]:.2f}",
                        "CPU ratio": f"{c[0.5] / c[0.0]:.2f}" if c[0.0] > 0 else "n/a",
                        "ns per dropped-layer element": f"{1e9 * (t[0.5] - t[0.0]) / (rows * w):.2f}",
                        "seconds": t, "cpu_seconds": c, "ratio_value": t[0.5] / t[0.0]})
    ratios = [r["ratio_value"] for r in summary]
    reading = [
        f"an epoch with dropout (p=0.5) took {min(ratios):.2f}x to {max(ratios):.2f}x the time of one without "
        f"(widths {widths[0]} to {widths[-1]}, {rows} rows, full batch; median of {epochs} epochs x {repeats} "
        f"repeats, mask backend: {kernels.backend()}); in process CPU time the ratios were "
        f"{', '.join(r['CPU ratio'] for r in summary)}.",
        f"at width {widths[-1]} dropout adds {1000 * (summary[-1]['seconds'][0.5] - summary[-1]['seconds'][0.0]):.2f}"
        f" ms per epoch, {summary[-1]['ns per dropped-layer element']} ns per element of the dropout layer "
        "(forward + backward); the rest of the epoch is matmuls, ReLU and the optimiser, which grow with width too. "
        "Timings on a shared machine are noisy: compare the ratios, not the absolute times.",
    ]
    config = {"widths": list(widths), "timed_epochs": epochs, "repeats": repeats, "rows": rows, "p": 0.5,
              "optimizer": "adam", "batch_size": None, "seed": seed}

    def plot(path):
        from droplab.lab.plots import COLORS, pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for (label, p), color in zip((("no dropout", 0.0), ("dropout p=0.5", 0.5)), COLORS):
            axes[0].plot(widths, [1000 * r["seconds"][p] for r in summary], "o-", color=color, label=label)
        axes[1].plot(widths, ratios, "o-", color=COLORS[2])
        axes[1].axhline(1.0, color="k", lw=0.8)
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("hidden width")
            ax.grid(alpha=0.3)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("ms per epoch (median)")
        axes[0].legend(fontsize=8)
        axes[1].set_ylabel("time with dropout / without")
        fig.suptitle(f"cost of dropout: {rows} x 2 -> width -> 3, full batch")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    cols = [(k, k) for k in ("width", "ms/epoch, no dropout", "ms/epoch, p=0.5", "ratio", "CPU ratio",
                             "ns per dropped-layer element")]
    return StudyResult(config, runs, summary, cols, reading, {"cost.png": plot})


# ------------------------------------------------------------------------------- textbook

_TEXTBOOK = {"full": (10001, 3, {}), "quick": (1000, 2, {}),
             "tiny": (15, 1, {"samples": 100, "val_samples": 50})}


def study_textbook(scale: str, seed: int, console) -> StudyResult:
    """The NNFS chapter-15 spiral: 2 -> 64 -> 3, dropout p = 0.1, Adam lr 0.05 decay 5e-5, full batch."""
    from droplab import data

    epochs, n_seeds, options = _TEXTBOOK[scale]
    ds = data.load("spiral", **options)
    seeds = [seed + i for i in range(n_seeds)]
    runs = []
    arms = ("no dropout", "dropout p=0.1")
    for arm, p in zip(arms, (0.0, 0.1)):
        for s in seeds:
            with console.status(f"textbook: {arm}, seed {s}, {epochs} epochs"):
                model = nn.Sequential(nn.Dense(2, 64), nn.ReLU(), nn.Dropout(p), nn.Dense(64, 3, init="glorot"),
                                      seed=s)
                rec = _fit(model, ds, epochs=epochs, batch_size=None, optimizer=_adam(0.05, 5e-5))
            runs.append({"arm": arm, "p": p, "seed": s, **rec})
    summary = _arm_summary(runs, list(arms))
    none, drop = summary
    t_drop = drop["train_accuracy"]["mean"]
    reading = [
        f"validation accuracy: {drop['val acc (%)']}% with dropout against {none['val acc (%)']}% without; "
        f"difference {_paired(runs, arms[1], arms[0])}.",
        f"why: the network underfits. Its train accuracy (eval mode) is {drop['train acc (%)']}% with dropout "
        f"and {none['train acc (%)']}% without, far from 100%, and the train-validation gap without dropout is "
        f"only {none['gap (points)']} points: there is little overfitting for dropout to cure, and dropout "
        f"takes away capacity that 64 units on 3000 spiral points need"
        + (" (train accuracy with dropout is at most what it is without)." if t_drop <= none["train_accuracy"]["mean"]
           else "."),
    ]
    config = {"dataset": ds.name, "dataset_description": ds.description, "hidden": [64], "p": 0.1,
              "optimizer": "adam", "lr": 0.05, "decay": 5e-5, "batch_size": None, "epochs": epochs, "seeds": seeds,
              "reference": "Kinsley and Kukiela, Neural Networks from Scratch in Python (2020), chapter 15"}

    def plot(path):
        from droplab.lab.plots import learning_curves

        learning_curves({a: [r["history"] for r in runs if r["arm"] == a] for a in arms}, path,
                        title="NNFS spiral, 64 units: train (dashed) vs validation")

    cols = [(k, k) for k in ("arm", "train acc (%)", "val acc (%)", "gap (points)", "val loss")]
    return StudyResult(config, runs, summary, cols, reading, {"learning_curves.png": plot})


# ------------------------------------------------------------------------------- bug-gallery

_BUGS = {"full": (10**7, 300, 3000), "quick": (10**6, 100, 3000), "tiny": (10**5, 3, 300)}


class _UnusedDropout(nn.Module):
    """The bug ``h_drop = dropout(h); return h``: the mask is drawn and thrown away."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(p)

    def children(self):
        return [self.drop]

    def forward(self, x):
        self.drop.forward(x)  # computed, never used
        return x

    def backward(self, dy):
        return dy


class _NoRescaleDropout(nn.Dropout):
    """The bug ``y = x * mask`` in training and ``y = x`` in eval: no 1/(1-p), no (1-p)."""

    def __init__(self, p: float) -> None:
        super().__init__(p, inverted=False)

    def _eval_factor(self) -> float:
        return 1.0


def _textbook_forward(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """The NNFS-style layer ``x * binomial(1, 1-p) / (1-p)``: 0/0 = NaN at p = 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return x * (rng.binomial(1, 1 - p, size=x.shape) / (1 - p))


def study_bug_gallery(scale: str, seed: int, console) -> StudyResult:
    """The classic dropout bugs, each measured against what theory says it does."""
    from droplab import data, kernels

    n, epochs, rows = _BUGS[scale]
    rng = np.random.default_rng(seed)
    z = 5.0  # 5-sigma bounds: two-sided false-failure probability 5.7e-7 per check
    # 1. randn for rand
    ps = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    randn_rows = []
    for p in ps:
        measured = 1.0 - float((rng.standard_normal(n) < 1 - p).mean())
        theory = randn_mask_drop_rate(p)
        bound = z * math.sqrt(theory * (1 - theory) / n)
        randn_rows.append({"p": p, "theory": theory, "measured": measured, "bound": bound,
                           "within": abs(measured - theory) <= bound})
    # 2. a dropout whose output is never used
    ds = data.load("spiral", **({"samples": rows // 3, "val_samples": 50} if rows != 3000 else {}))
    histories, weights = {}, {}
    for arm, layer in (("unused dropout (p=0.5)", lambda: _UnusedDropout(0.5)), ("no dropout", lambda: nn.Dropout(0.0)),
                       ("dropout (p=0.5)", lambda: nn.Dropout(0.5))):
        with console.status(f"bug-gallery: training with {arm}"):
            model = nn.Sequential(nn.Dense(2, 64), nn.ReLU(), layer(), nn.Dense(64, 3, init="glorot"), seed=seed)
            rec = _fit(model, ds, epochs=epochs, batch_size=None, optimizer=_adam(0.02))
        histories[arm] = rec
        weights[arm] = [p.value.copy() for p in model.parameters()]
    identical = (all(np.array_equal(a, b) for a, b in zip(weights["unused dropout (p=0.5)"], weights["no dropout"]))
                 and histories["unused dropout (p=0.5)"]["history"] == histories["no dropout"]["history"])
    differs = not all(np.array_equal(a, b) for a, b in zip(weights["dropout (p=0.5)"], weights["no dropout"]))
    # 3. missing rescaling: train/eval mean ratio
    x = np.abs(rng.standard_normal((max(1, n // 1000), 1000))).astype(np.float32)
    scale_rows = []
    for p in (0.1, 0.3, 0.5, 0.7, 0.9):
        layer = _NoRescaleDropout(p).seed(seed)
        train_mean = float(layer.train().forward(x).mean(dtype=np.float64))
        eval_mean = float(layer.eval().forward(x).mean(dtype=np.float64))
        keep = 1 - kernels.effective_p(p)
        # the ratio is a mean of x*m over n elements divided by the mean of x: its sd is
        # sqrt(E[x^2] keep (1-keep) / n) / E[x], with E|Z| = sqrt(2/pi), E[Z^2] = 1 for |N(0, 1)|
        sd = math.sqrt(keep * (1 - keep) / x.size) / math.sqrt(2 / math.pi)
        ratio = train_mean / eval_mean
        scale_rows.append({"p": p, "ratio": ratio, "theory": keep, "bound": z * sd,
                           "within": abs(ratio - keep) <= z * sd})
    with console.status("bug-gallery: training with the unscaled dropout"):
        model = nn.Sequential(nn.Dense(2, 64), nn.ReLU(), _NoRescaleDropout(0.5), nn.Dense(64, 3, init="glorot"),
                              seed=seed)
        noscale = _fit(model, ds, epochs=epochs, batch_size=None, optimizer=_adam(0.02))
    # 4. p = 1
    h = np.abs(rng.standard_normal((100, 64))).astype(np.float32)
    textbook = _textbook_forward(h, 1.0, rng)
    layer = nn.Dropout(1.0).seed(seed)
    ours = layer.forward(h)
    ours_grad = layer.backward(np.ones_like(h))
    nan_rows = {"textbook_nan_fraction": float(np.isnan(textbook).mean()),
                "droplab_nan_fraction": float(np.isnan(ours).mean()),
                "droplab_output_all_zero": bool(np.all(ours == 0)),
                "droplab_grad_finite_and_zero": bool(np.all(ours_grad == 0))}

    summary = [
        {"bug": f"randn mask, p={r['p']:g}", "expected": f"drop rate {r['p']:g}",
         "measured": f"drop rate {r['measured']:.4f}", "theory": f"1 - Phi(1-p) = {r['theory']:.4f}",
         "agrees (5 sigma)": "yes" if r["within"] else "NO"} for r in randn_rows]
    summary.append({"bug": "dropout output never used", "expected": "regularised training",
                    "measured": "bit-identical to no dropout" if identical else "differs from no dropout",
                    "theory": "no effect at all", "agrees (5 sigma)": "yes" if identical else "NO"})
    summary += [{"bug": f"no rescaling, p={r['p']:g}", "expected": "train/eval mean ratio 1",
                 "measured": f"ratio {r['ratio']:.4f}", "theory": f"1 - p = {r['theory']:.4f}",
                 "agrees (5 sigma)": "yes" if r["within"] else "NO"} for r in scale_rows]
    summary.append({"bug": "x*mask/(1-p) at p=1", "expected": "zeros",
                    "measured": f"{100 * nan_rows['textbook_nan_fraction']:.0f}% NaN (droplab: "
                                f"{100 * nan_rows['droplab_nan_fraction']:.0f}% NaN, all zeros)",
                    "theory": "0/0 = NaN",
                    "agrees (5 sigma)": "yes" if nan_rows["textbook_nan_fraction"] == 1 else "NO"})
    half = next(r for r in randn_rows if r["p"] == 0.5)
    ns = histories["no dropout"]["metrics"]
    reading = [
        f"randn for rand: with keep = 1-p and mask = randn < keep, the keep rate is Phi(1-p), so p=0.5 drops "
        f"{half['measured']:.3f} of the units (theory 1-Phi(0.5) = {half['theory']:.4f}), and p=0 still drops "
        f"{randn_rows[0]['measured']:.3f}; the drop rate never exceeds 0.5 (at p=1, 1-Phi(0) = 0.5).",
        "unused output: training with a dropout whose output is thrown away gave "
        + ("weights and history bit-identical to training without dropout" if identical else "DIFFERENT results")
        + f" (a real dropout layer gave {'different' if differs else 'the same'} weights): it regularises nothing.",
        f"missing rescaling: the mean activation in training is {scale_rows[2]['ratio']:.4f} of its eval value at "
        f"p=0.5 (1-p = {scale_rows[2]['theory']:g}); the next layer sees inputs {1 / scale_rows[2]['theory']:.1f}x "
        f"larger at test time than it was trained on. Trained on spiral: val loss {noscale['metrics']['val_loss']:.3f} "
        f"against {histories['dropout (p=0.5)']['metrics']['val_loss']:.3f} with correct inverted dropout "
        f"(val acc {100 * noscale['metrics']['val_accuracy']:.1f}% vs "
        f"{100 * histories['dropout (p=0.5)']['metrics']['val_accuracy']:.1f}%; no dropout: "
        f"{100 * ns['val_accuracy']:.1f}%).",
        f"p = 1: the textbook x*mask/(1-p) gives {100 * nan_rows['textbook_nan_fraction']:.0f}% NaN (0/0); "
        "droplab's Dropout(1.0) gives zeros forward and a zero, finite gradient.",
    ]
    runs = [{"arm": k, "seed": seed, **v} for k, v in histories.items()]
    runs.append({"arm": "no rescaling (p=0.5)", "seed": seed, **noscale})
    config = {"mask_draws": n, "epochs": epochs, "dataset": ds.name, "hidden": [64], "seed": seed, "z": z}
    extra = {"randn_mask": randn_rows, "unused_output": {"identical_to_no_dropout": identical,
                                                        "real_dropout_differs": differs},
             "no_rescaling": scale_rows, "p_one": nan_rows}

    def plot(path):
        from droplab.lab.plots import COLORS, pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        grid = np.linspace(0, 1, 101)
        axes[0].plot(grid, grid, color="k", lw=0.8, label="intended: p")
        axes[0].plot(grid, [randn_mask_drop_rate(q) for q in grid], color=COLORS[1], label="theory: 1 - Phi(1-p)")
        axes[0].plot([r["p"] for r in randn_rows], [r["measured"] for r in randn_rows], "o", color=COLORS[0],
                     label="measured (randn < 1-p)")
        axes[0].set_xlabel("p (intended drop probability)")
        axes[0].set_ylabel("actual drop rate")
        axes[0].set_title("randn instead of rand")
        qs = [r["p"] for r in scale_rows]
        axes[1].plot(grid, 1 - grid, color="k", lw=0.8, label="theory: 1 - p")
        axes[1].plot(qs, [r["ratio"] for r in scale_rows], "o", color=COLORS[0], label="measured")
        axes[1].set_xlabel("p")
        axes[1].set_ylabel("mean activation, train / eval")
        axes[1].set_title("no rescaling: train/eval scale mismatch")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    cols = [(k, k) for k in ("bug", "expected", "measured", "theory", "agrees (5 sigma)")]
    return StudyResult(config, runs, summary, cols, reading, {"bug_gallery.png": plot}, extra)


# ------------------------------------------------------------------------------- the command

STUDIES: dict[str, Callable] = {
    "p-choice": study_p_choice,
    "where": study_where,
    "batchnorm-order": study_batchnorm_order,
    "cost": study_cost,
    "textbook": study_textbook,
    "bug-gallery": study_bug_gallery,
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="one of: " + ", ".join(STUDIES)
                        + " (results go to results/study-NAME unless --out is given)")
    parser.add_argument("--quick", action="store_true", help="a small setting: under two minutes on 2 cores")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # seconds; for the test suite


def run_study(name: str, *, scale: str = "full", seed: int = 0, console=None) -> StudyResult:
    """Run study ``name`` at ``scale`` ("full", "quick" or "tiny") and return its result (writes nothing)."""
    _validate.one_of("study", "name", name, STUDIES)
    _validate.one_of("study", "scale", scale, SCALES)
    if console is None:
        from rich.console import Console

        console = Console(quiet=True)
    return STUDIES[name](scale, seed, console)


def _markdown(result: StudyResult) -> str:
    lines = ["| " + " | ".join(h for h, _ in result.columns) + " |",
             "|" + "|".join("---" for _ in result.columns) + "|"]
    for row in result.summary:
        lines.append("| " + " | ".join(str(row[k]) for _, k in result.columns) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in result.reading) + "\n"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from droplab.lab._results import force_flag, results_dir, versions, write_json

    name = _validate.one_of("study", "name", args.name, STUDIES)
    scale = "tiny" if args.tiny else "quick" if args.quick else "full"
    out = args.out if args.out != "results/study" else f"results/study-{name}"
    console = Console(quiet=args.quiet)
    t0 = time.perf_counter()
    with results_dir(out, "study", force=force_flag(args)) as tmp:  # checked and locked before the study runs
        result = run_study(name, scale=scale, seed=args.seed, console=console)
        write_json(tmp / "results.json", {
            "command": "study", "study": name, "scale": scale,
            "config": {"seed": args.seed, **result.config}, "versions": versions(), "runs": result.runs,
            "summary": result.summary, "reading": result.reading, **result.extra,
            "seconds": time.perf_counter() - t0})
        (tmp / "table.md").write_text(_markdown(result))
        for filename, plot in result.plots.items():
            plot(tmp / filename)
    table = Table(title=f"droplab study {name}" + (f" ({scale})" if scale != "full" else ""))
    for header, _ in result.columns:
        table.add_column(header)
    for row in result.summary:
        table.add_row(*(str(row[k]) for _, k in result.columns))
    console.print(table)
    console.print("[bold]reading[/bold]")
    for line in result.reading:
        console.print(f"- {line}", highlight=False)
    console.print(f"results written to {out}/ (results.json, table.md, {', '.join(result.plots)})")
    return 0
