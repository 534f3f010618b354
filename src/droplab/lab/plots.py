"""Plots for results folders (PNG, matplotlib's Agg canvas: no display needed).

Figures are made with matplotlib's object-oriented API (:func:`subplots`), never through
``matplotlib.pyplot``: no global figure registry to close, no backend chosen for the session,
and the lab does not pay pyplot's import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["subplots", "tight_layout", "learning_curves", "decision_boundary", "errors", "clip", "RANGES"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True):
    """``(figure, axes)`` as ``pyplot.subplots(nrows, ncols, figsize=..., squeeze=...)`` makes them,
    without pyplot.

    The figure belongs to no pyplot state: there is nothing to close (it is freed with its last
    reference), and ``fig.savefig`` renders a PNG with the Agg canvas whatever the session's backend.

    Example:
        >>> fig, axes = subplots(1, 2, figsize=(6, 2))
        >>> len(axes), fig.get_size_inches().tolist()
        (2, [6.0, 2.0])
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def tight_layout(fig) -> None:
    """``fig.tight_layout()``, once: the subplot parameters it sets stay, and ``savefig`` no longer
    makes its own pass over every artist for the placeholder layout engine that ``tight_layout``
    leaves behind (the same pixels; about a sixth of a save)."""
    fig.tight_layout()
    fig.set_layout_engine(None)


# the values a plotted quantity can take, in the plot's units: axes never show beyond them
RANGES = {"accuracy": (0.0, 100.0), "gap": (-100.0, 100.0), "loss": (0.0, None), "error": (0.0, 100.0)}


def errors(stat, scale: float = 1.0) -> tuple[float, float, float]:
    """``(mean, below, above)`` for an error bar of a :func:`droplab.lab.stats.summary`: the 95% CI
    when n >= 3, else the range of the values (the plot's title says which)."""
    if not stat or stat.get("mean") is None:
        return float("nan"), 0.0, 0.0
    m = stat["mean"] * scale
    if stat.get("ci95") is not None:
        return m, stat["ci95"] * scale, stat["ci95"] * scale
    if stat.get("min") is not None:
        return m, m - stat["min"] * scale, stat["max"] * scale - m
    return m, 0.0, 0.0


def clip(ax, kind: str) -> None:
    """Clip the y axis to the possible range of ``kind`` (``RANGES``): no -20% accuracy axis."""
    lo, hi = RANGES[kind]
    y0, y1 = ax.get_ylim()
    ax.set_ylim(max(y0, lo) if lo is not None else y0, min(y1, hi) if hi is not None else y1)


def _band(ax, curves: Sequence[Sequence[float]], color: str, label: str, style: str = "-") -> None:
    n = min(len(c) for c in curves)
    arr = np.asarray([c[:n] for c in curves], dtype=float)
    x = np.arange(1, n + 1)
    mean = arr.mean(axis=0)
    ax.plot(x, mean, style, color=color, label=label, lw=1.5)
    if len(arr) > 1:
        sd = arr.std(axis=0)
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)


def learning_curves(arms: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], path: str | Path,
                    title: str = "") -> None:
    """Train (dashed) and validation (solid) loss and accuracy per epoch, mean ± std over seeds.

    ``arms`` maps an arm's label to the list of its runs' histories.
    """
    has_acc = all("accuracy" in h for runs in arms.values() for h in runs)
    fig, axes = subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    for ax, metric in zip(axes[0], ("loss", "accuracy")):
        for (label, runs), color in zip(arms.items(), COLORS):
            _band(ax, [h[metric] for h in runs], color, f"{label} train", "--")
            if all(f"val_{metric}" in h for h in runs):
                _band(ax, [h[f"val_{metric}"] for h in runs], color, f"{label} validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric == "accuracy":
            ax.set_ylim(max(ax.get_ylim()[0], 0.0), min(ax.get_ylim()[1], 1.0))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:  # every run diverged (no history): say so instead of an empty legend
            ax.text(0.5, 0.5, "no curves: every run diverged", transform=ax.transAxes, ha="center", va="center")
        if metric == "loss":
            ax.set_yscale("log")
    if title:
        fig.suptitle(title)
    tight_layout(fig)
    fig.savefig(path, dpi=110)


def decision_boundary(panels: Mapping[str, Callable[[np.ndarray], np.ndarray]], X: np.ndarray, y: np.ndarray,
                      path: str | Path, title: str = "", resolution: int = 250) -> None:
    """The predicted class over the plane, one panel per model, with the data points on top.

    ``panels`` maps a label to a function from ``(M, 2)`` points to ``(M, K)`` probabilities.
    """
    from matplotlib import colormaps

    pad = 0.1 * (X.max(axis=0) - X.min(axis=0))
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    k = int(y.max()) + 1
    cmap = colormaps["tab10"]
    fig, axes = subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (label, predict) in zip(axes[0], panels.items()):
        probs = predict(grid)
        cls = probs.argmax(axis=1).reshape(gx.shape)
        conf = probs.max(axis=1).reshape(gx.shape)
        colors = np.asarray([cmap(c % 10)[:3] for c in range(k)])[cls]
        shade = 0.35 + 0.45 * (conf[..., None] - 1 / k) / (1 - 1 / k)
        ax.imshow(1 - shade * (1 - colors), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto")
        ax.scatter(X[:, 0], X[:, 1], c=[cmap(c % 10) for c in y], s=6, edgecolors="k", linewidths=0.2)
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    tight_layout(fig)
    fig.savefig(path, dpi=110)
