"""The README's measured figures: which command makes each table, and how it is stamped.

Each table sits between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` in README.md,
followed inside the block by a stamp line (commit, machine, BLAS kernel, numpy, date).
``make figures`` (``.ci/figures``) reruns every command and rewrites the blocks;
``tests/test_readme_figures.py`` (slow) reruns those in :data:`CHECKED` and fails when a stamped accuracy is off by
more than :data:`TOLERANCE_POINTS`. The two CPUs seen so far (Intel SkylakeX and AMD Haswell
OpenBLAS kernels) differ by at most 0.5 points on these figures.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOLERANCE_POINTS = 1.5

#: name -> the droplab command line (after ``droplab``) whose results.json fills the table.
FIGURES: dict[str, list[str]] = {
    "compare": ["compare"],
    # the NNFS chapter-15 setting exactly (0.01*randn init, L2 5e-4 on the first layer's weights and
    # biases, Adam lr 0.05 decay 5e-5, 10,001 full-batch epochs, a separately drawn validation set)
    "spiral": ["compare", "--dataset", "spiral", "--hidden", "64", "--p", "0.1", "--init", "small",
               "--first-l2", "5e-4", "--lr", "0.05", "--decay", "5e-5", "--batch-size", "0", "--epochs", "10001"],
}
#: the figures the slow test reruns and holds to TOLERANCE_POINTS. The default experiment's
#: arms vary by under a point between seeds and CPUs; the spiral's dropout arm varies by about
#: 15 points between seeds over 10,001 full-batch epochs, so a last-bit difference in one
#: CPU's BLAS can move its 3-seed mean by more than the tolerance: it is stamped, not gated.
CHECKED = ("compare",)
#: the accuracy columns (fractions in results.json, points in the README), in table order.
ACCURACIES = ("train_accuracy", "val_accuracy", "gap")


def measure(name: str) -> list[dict]:
    """Run the figure's command (quiet, into a temporary folder); its results.json summary."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "droplab", *FIGURES[name], "--quiet", "--out", str(out)]
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads((out / "results.json").read_text())["summary"]


def _pm(stat: dict, scale: float, digits: int) -> str:
    from droplab.lab import stats

    return stats.fmt(stat, scale, digits)


def render(summary: list[dict]) -> list[str]:
    """The table's lines: accuracies in points (mean ± 95% CI over seeds), the loss as measured."""
    lines = ["| arm | train acc (eval mode) | val acc | gap (points) | val loss |", "|---|---|---|---|---|"]
    for arm in summary:
        cells = [_pm(arm[k], 100, 1) for k in ACCURACIES] + [_pm(arm["val_loss"], 1, 3)]
        lines.append(f"| {arm['arm']} | " + " | ".join(cells) + " |")
    return lines


def stamp() -> str:
    """Where a figure came from: commit, CPU, BLAS kernel, numpy, date."""
    import numpy as np
    import threadpoolctl

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    blas = next((f"{i.get('internal_api')} {i.get('architecture')}" for i in threadpoolctl.threadpool_info()
                 if i.get("user_api") == "blas"), "unknown BLAS")
    return (f"Measured at commit {commit} on {cpu} ({platform.machine()}, {blas}), numpy {np.__version__}, "
            f"{date.today().isoformat()}; mean ± 95% CI (Student t) over the seeds. Re-measure with `make figures`.")


def _block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- figures:{name} -->\n)(.*?)(<!-- /figures:{name} -->)", re.S)


def stamped(name: str, text: str | None = None) -> dict[str, dict[str, float]]:
    """The README's figures for ``name``: ``{arm: {column: points}}`` (accuracy columns)."""
    text = README.read_text() if text is None else text
    m = _block(name).search(text)
    if m is None:
        raise LookupError(f"README.md has no <!-- figures:{name} --> block")
    out = {}
    for line in m.group(2).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and "±" in cells[1]:
            out[cells[0]] = {k: float(c.split("±")[0]) for k, c in zip(ACCURACIES, cells[1:4])}
    return out


def main() -> None:
    text = README.read_text()
    for name in FIGURES:
        print(f"measuring {name}: droplab {' '.join(FIGURES[name])}", flush=True)
        block = "\n".join(render(measure(name)) + ["", stamp()]) + "\n"
        text, n = _block(name).subn(lambda m, b=block: m.group(1) + b + m.group(3), text)
        if n != 1:
            raise SystemExit(f"README.md: expected one <!-- figures:{name} --> block, found {n}")
    README.write_text(text)
    print("README.md re-stamped; update the prose that quotes these figures.")


if __name__ == "__main__":
    main()
