"""Quick kernel benchmark: droplab.kernels.apply against baselines measured in the same run.

Usage::

    python benchmarks/kernels_quick.py            # speed table (ratios vs np.copyto, textbook)
    python benchmarks/kernels_quick.py --threads  # thread-pool options in a training-like loop

Ratios, not absolute times, are what to compare (these shared machines vary by up to 1.6x).
``np.copyto`` moves the same bytes as the kernel (read x, write y), so ``copyto / apply`` is
the fraction of memory bandwidth the kernel reaches. ``textbook`` is
``x * np.random.binomial(1, keep, x.shape) / keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from droplab.lab._bench import median_iqr

SHAPES = {"1M": (1 << 20,), "3000x512": (3000, 512), "16M": (1 << 24,)}


def _paired(fa, fb, repeats: int) -> tuple[float, float, float, float]:
    """Times fa and fb alternately, so load from other processes hits both alike.

    Returns the medians of fa and fb, and the median and best of the per-pair ratio fa / fb.
    """
    fa(), fb()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    ta, tb = np.array(ta), np.array(tb)
    r = ta / tb
    return float(np.median(ta)), float(np.median(tb)), float(np.median(r)), float(r.max())


def speed(repeats: int) -> None:
    t0 = time.perf_counter()
    from droplab import kernels

    print(f"backend={kernels.backend()} (import+resolve {time.perf_counter() - t0:.2f}s)")
    rng = np.random.default_rng(0)
    key = (0x1234, 0x5678)
    t0 = time.perf_counter()
    kernels.apply(np.ones(1 << 17, np.float32), 0.5, key, 0, 2.0)
    print(f"first apply (compile or cache load): {time.perf_counter() - t0:.2f}s")
    print("copy/apply: np.copyto time / apply time (1.0 = copy bandwidth), median [best] of "
          f"{repeats} alternating pairs; textbook/apply: median times")
    print(f"{'shape':>9} {'p':>4} {'copyto ms':>9} {'apply ms':>9} {'copy/apply':>14} "
          f"{'in-place ms':>11} {'textbook ms':>11} {'textbook/apply':>14}")
    for name, shape in SHAPES.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        y = np.empty_like(x)
        d = x.copy()
        for p in (0.1, 0.5):
            keep, s = 1 - p, kernels.keep_scale(p)
            tc, ta, r, rbest = _paired(lambda: np.copyto(y, x), lambda: kernels.apply(x, p, key, 7, s, out=y), repeats)
            # backward is the same map; in place here (out=dy), as an engine may do
            ti, _ = median_iqr(lambda: kernels.apply(d, p, key, 7, s, out=d), repeats)
            tt, _ = median_iqr(lambda: x * np.random.binomial(1, keep, x.shape) / keep, max(5, repeats // 4))
            print(f"{name:>9} {p:>4} {tc * 1e3:9.3f} {ta * 1e3:9.3f} {r:7.2f} [{rbest:4.2f}] "
                  f"{ti * 1e3:11.3f} {tt * 1e3:11.2f} {tt / ta:14.1f}")


# --- thread pools -------------------------------------------------------------------------

_LOOP = r"""
import os, time, json, numpy as np
from droplab import kernels
rng = np.random.default_rng(0)
X = rng.standard_normal((3000, 2), dtype=np.float32)
W1 = rng.standard_normal((2, 512), dtype=np.float32)
W2 = rng.standard_normal((512, 3), dtype=np.float32)
key, p = (1, 2), 0.5
STEPS = int(os.environ.get("BENCH_STEPS", "100"))
s = kernels.keep_scale(p)
h = np.empty((3000, 512), np.float32); hd = np.empty_like(h); dh = np.empty_like(h)
def step(c):
    np.matmul(X, W1, out=h)
    np.maximum(h, 0, out=h)
    kernels.apply(h, p, key, c, s, out=hd)
    out = hd @ W2
    dout = out * 1e-3
    g2 = hd.T @ dout
    np.matmul(dout, W2.T, out=dh)
    kernels.apply(dh, p, key, c, s, out=dh)
    g1 = X.T @ dh
    return g1, g2
for c in range(20):
    step(c)
ts = []
for c in range(STEPS):
    t0 = time.perf_counter(); step(c); ts.append(time.perf_counter() - t0)
# the same loop without dropout kernels: what the matmuls cost alone
ts0 = []
for c in range(STEPS):
    t0 = time.perf_counter()
    np.matmul(X, W1, out=h); np.maximum(h, 0, out=h); out = h @ W2; dout = out * 1e-3
    g2 = h.T @ dout; np.matmul(dout, W2.T, out=dh); g1 = X.T @ dh
    ts0.append(time.perf_counter() - t0)
import numba
print(json.dumps({"step_ms": 1e3 * float(np.median(ts)), "no_dropout_ms": 1e3 * float(np.median(ts0)),
                  "layer": numba.threading_layer() if kernels.backend() == "numba" else "-"}))
"""

CONFIGS = {
    "library default": {},
    "omp (numba default)": {"NUMBA_THREADING_LAYER": "omp"},
    "omp + OMP_WAIT_POLICY=PASSIVE": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "PASSIVE"},
    "omp + OPENBLAS_NUM_THREADS=1": {"NUMBA_THREADING_LAYER": "omp", "OPENBLAS_NUM_THREADS": "1"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "workqueue + OPENBLAS_NUM_THREADS=1": {"NUMBA_THREADING_LAYER": "workqueue", "OPENBLAS_NUM_THREADS": "1"},
    "numba 1 thread": {"NUMBA_NUM_THREADS": "1"},
}
REFERENCE = {"numpy reference": {"DROPLAB_KERNELS": "numpy", "BENCH_STEPS": "20"}}


def threads(rounds: int, with_reference: bool) -> None:
    configs = {**CONFIGS, **(REFERENCE if with_reference else {})}
    names = list(configs)
    results: dict[str, list] = {n: [] for n in names}
    for _ in range(rounds):  # interleaved rounds, so drift in machine load hits every config
        for name in names:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS",
                                "NUMBA_NUM_THREADS", "DROPLAB_KERNELS")}
            env.update(configs[name])
            r = subprocess.run([sys.executable, "-c", _LOOP], env=env, capture_output=True, text=True, check=True)
            results[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{'config':>36} {'layer':>9} {'step ms':>8} {'matmuls only ms':>15}")
    for name in names:
        rs = results[name]
        step = np.median([r["step_ms"] for r in rs])
        base = np.median([r["no_dropout_ms"] for r in rs])
        print(f"{name:>36} {rs[0]['layer']:>9} {step:8.3f} {base:15.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", action="store_true", help="compare thread-pool settings instead")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the --threads comparison")
    ap.add_argument("--reference", action="store_true", help="add the NumPy reference to --threads")
    a = ap.parse_args()
    threads(a.rounds, a.reference) if a.threads else speed(a.repeats)


if __name__ == "__main__":
    main()
