"""The textbook float64 NumPy spiral network (NNFS style), the baseline of ``droplab bench``.

The code itself is ``droplab.lab._bench.textbook`` (kept there so the installed command can
run it); it is re-exported here. Run this file to time a few epochs of it::

    python benchmarks/textbook.py [--epochs 20] [--hidden 512] [--p 0.1]

``p`` is the drop probability (the book's ``Layer_Dropout(rate)``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from droplab.lab._bench.textbook import *  # noqa: E402,F401,F403
from droplab.lab._bench.textbook import SpiralNetwork  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--p", type=float, default=0.1, help="drop probability")
    args = ap.parse_args(argv)
    import numpy as np

    from droplab import data

    X, y = data.spiral(1000, 3, seed=0)
    np.random.seed(0)
    net = SpiralNetwork(hidden=args.hidden, p=args.p)
    X64 = X.astype(np.float64)
    ts = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        loss, acc = net.epoch(X64, y)
        ts.append(time.perf_counter() - t0)
    print(f"textbook spiral epoch: median {np.median(ts) * 1e3:.1f} ms over {args.epochs} epochs "
          f"(loss {loss:.3f}, accuracy {acc:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
