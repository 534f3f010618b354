"""Readings over runs: per-arm summaries and the sentences every command prints, all through
:mod:`droplab.lab.stats` (mean ± 95% CI; a difference claimed only when n >= 3 and its paired
95% CI excludes 0). ``compare``, ``sweep``, the studies and ``droplab report`` use these, so a
results folder reads the same in the terminal and on its page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from droplab.lab import stats

__all__ = ["METRICS", "COLUMNS", "summarize", "arm_rows", "by_seed", "paired_sentence", "arm_table", "ok"]

METRICS = ("train_accuracy", "val_accuracy", "gap", "train_loss", "val_loss", "seconds_per_epoch")
# (header with its unit, metric, scale, digits): the terminal's and the report's columns
COLUMNS = (("train acc (%)", "train_accuracy", 100, 1), ("val acc (%)", "val_accuracy", 100, 1),
           ("gap (points)", "gap", 100, 1), ("val loss", "val_loss", 1, 3), ("ms/epoch", "seconds_per_epoch", 1000, 1))
DROP = ("ms/epoch", "train acc (%)", "val loss")  # left out first on a narrow terminal


def ok(run: Mapping) -> bool:
    """A run that finished with metrics (not diverged)."""
    return bool(run.get("metrics")) and not run.get("error") and not run.get("diverged")


def _metric(run: Mapping, key: str) -> float | None:
    m = run.get("metrics")
    v = m.get(key) if isinstance(m, Mapping) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summarize(runs: Sequence[Mapping], metrics: Sequence[str] = METRICS) -> dict[str, Any]:
    """``stats.summary`` of each metric over ``runs`` (diverged runs left out and counted)."""
    good = [r for r in runs if ok(r)]
    out: dict[str, Any] = {m: stats.summary([_metric(r, m) for r in good]) for m in metrics}
    out["diverged"] = len(runs) - len(good)
    return out


def arm_rows(runs: Sequence[Mapping], arms: Sequence[str], key: str = "arm") -> list[dict[str, Any]]:
    """One summary row per arm: ``{key: arm, "seeds": n, metric: summary, "diverged": k}``."""
    rows = []
    for arm in arms:
        mine = [r for r in runs if r.get(key) == arm]
        rows.append({key: arm, "seeds": len(mine), **summarize(mine)})
    return rows


def by_seed(runs: Sequence[Mapping], metric: str, **match: Any) -> dict[Any, float | None]:
    """``{seed: metric}`` of the finished runs whose fields equal ``match``."""
    return {r["seed"]: _metric(r, metric) for r in runs
            if ok(r) and all(r.get(k) == v for k, v in match.items())}


def paired_sentence(runs: Sequence[Mapping], arm: Mapping[str, Any], base: Mapping[str, Any], *, subject: str,
                    metric: str = "val_accuracy", what: str = "validation accuracy", scale: float = 100,
                    unit: str = " points", digits: int = 1, up: str = "raised", down: str = "lowered") -> str:
    """The one rule's sentence for ``arm - base`` on ``metric``, paired by seed."""
    diffs = stats.paired(by_seed(runs, metric, **base), by_seed(runs, metric, **arm))
    return stats.sentence(stats.verdict(diffs), subject=subject, what=what, scale=scale, unit=unit, digits=digits,
                          up=up, down=down)


def arm_table(title: str, rows: Sequence[Mapping], label: str = "arm", columns=COLUMNS, drop=DROP,
              labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The table of summary rows: one line per arm, every figure as :func:`stats.fmt` prints it."""
    from droplab.lab import tables

    ns = [row[m]["n"] for row in rows for _, m, _, _ in columns if isinstance(row.get(m), Mapping)
          and row[m].get("n")]
    cells = []
    for i, row in enumerate(rows):
        cells.append([labels[i] if labels else str(row[label]),
                      *(stats.fmt(row.get(m), scale, digits) for _, m, scale, digits in columns)])
    return tables.table(title, [label, *(h for h, *_ in columns)], cells, note=stats.legend(ns or [0]),
                        drop=drop)
