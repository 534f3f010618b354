"""MC dropout benchmark: ``nn.mc_predict`` (stacked passes) against a Python loop of passes.

The network is the lab's default MLP, 40-256-256-10 with p = 0.3 after each hidden layer
(p: probability that a unit is zeroed). The baseline is what a user writes without
``mc_predict``: ``T`` predict-style forward passes with the dropout layers on, each turned
into probabilities, in a Python loop. ``mc_predict`` also computes its statistics (mean, std,
entropy, mutual information, variation ratio) inside the timed region; the baseline does not.

Both are timed in the same run, interleaved repeat by repeat, float32, seeded inputs, after a
warm-up; the median and inter-quartile range are reported, and the ratio of medians is the
figure to compare (these shared machines vary by up to 1.6x between runs).

Besides the headline size (T = 100 passes over N = 10,000 inputs) it sweeps N, because the
gain from stacking is per-call overhead amortised: at small N each of the T loop calls is a
handful of small matrix products dominated by Python and BLAS call overhead; at N = 10,000
each call is already a large, efficient GEMM, so the loop and the stacked forward do the same
arithmetic at the same efficiency and only the deterministic first layer (run once per
input, not T times) is saved.

Usage::

    python benchmarks/mc_bench.py                    # headline + N sweep, 20 repeats
    python benchmarks/mc_bench.py --repeats 5 --json out.json
    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/mc_bench.py   # one core each

From code: ``from benchmarks.mc_bench import bench_mc; bench_mc(repeats=5)`` returns a dict.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["bench_mc"]


def _stats(ts: list[float]) -> dict:
    a = np.asarray(ts)
    return {"median_s": float(np.median(a)), "iqr_s": float(np.percentile(a, 75) - np.percentile(a, 25)),
            "min_s": float(a.min()), "repeats": int(a.size)}


def _model(p: float, seed: int):
    from droplab import nn
    from droplab.lab import models

    model = models.mlp(40, (256, 256), 10, p=p, seed=seed)
    model._loss = nn.SoftmaxCrossEntropy()  # as after fit: outputs become probabilities
    return model


def _loop(model, X: np.ndarray, T: int) -> np.ndarray:
    """The baseline: T predict-style passes with only the dropout layers on, in a Python loop."""
    mods = list(model.modules())
    was = [m.training for m in mods]
    for m in mods:
        m.training = m.is_dropout
    try:
        return np.stack([model._loss.output(model.forward(X)) for _ in range(T)])
    finally:
        for m, t in zip(mods, was):
            m.training = t


def _time_pair(model, X, T: int, repeats: int, warmup: int = 1) -> dict:
    from droplab import nn

    def mc(seed):
        return nn.mc_predict(model, X, samples=T, seed=seed, keep_samples=False)

    for i in range(warmup):
        mc(i)
        _loop(model, X, T)
    t_mc, t_loop = [], []
    for r in range(repeats):  # interleaved, so drifts in machine load hit both alike
        t0 = time.perf_counter()
        mc(r)
        t_mc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _loop(model, X, T)
        t_loop.append(time.perf_counter() - t0)
    a, b = _stats(t_mc), _stats(t_loop)
    return {"N": int(X.shape[0]), "T": T, "mc_predict": a, "loop": b,
            "speedup": b["median_s"] / a["median_s"]}


def bench_mc(N: int = 10_000, T: int = 100, p: float = 0.3, repeats: int = 20,
             sweep: tuple[int, ...] = (10, 100, 1000), seed: int = 0, quiet: bool = True) -> dict:
    """Time ``mc_predict`` against a loop of ``T`` dropout-on forward passes; returns a dict.

    Args:
        N (int): inputs at the headline size. Default 10,000.
        T (int): passes. Default 100.
        p (float): drop probability of the MLP's dropout layers (not the keep probability).
            Default 0.3.
        repeats (int): timed repeats per size (median reported). Default 20.
        sweep: further input counts timed the same way (fewer repeats are not used: each
            small size is cheap). Default (10, 100, 1000).
        seed (int): seed of the inputs and the network. Default 0.
        quiet (bool): print nothing. Default True.

    Returns:
        ``{"config", "versions", "machine", "headline", "sweep", "target", "meets_target"}``:
        ``headline`` and each ``sweep`` row hold the medians, IQRs and ``speedup`` (loop
        median / mc_predict median, measured in the same run).
    """
    from droplab import __version__, kernels
    from droplab.lab import _bench
    from droplab.nn import mc as mc_module

    rng = np.random.default_rng(seed)
    model = _model(p, seed)
    kernels.apply(np.ones(64, np.float32), 0.5, (0, 0), 0, 2.0)  # compile / load the mask kernel first
    rows = []
    for n in sorted(set(sweep) | {N}):
        X = rng.standard_normal((n, 40)).astype(np.float32)
        row = _time_pair(model, X, T, repeats)
        rows.append(row)
        if not quiet:
            print(f"N={n:>6} T={T}: mc_predict {row['mc_predict']['median_s'] * 1e3:9.1f} ms "
                  f"(IQR {row['mc_predict']['iqr_s'] * 1e3:.1f})  loop {row['loop']['median_s'] * 1e3:9.1f} ms "
                  f"(IQR {row['loop']['iqr_s'] * 1e3:.1f})  speedup {row['speedup']:.2f}x", flush=True)
    headline = next(r for r in rows if r["N"] == N)
    return {
        "benchmark": "mc_predict vs Python loop of dropout-on forward passes",
        "config": {"model": "mlp 40-256-256-10, relu", "p": p, "N": N, "T": T, "repeats": repeats,
                   "seed": seed, "dtype": "float32", "memory_budget_bytes": mc_module.MEMORY_BUDGET},
        "versions": {"droplab": __version__, "numpy": np.__version__, "python": platform.python_version(),
                     "kernels_backend": kernels.backend()},
        "machine": _bench.machine(),
        "headline": headline,
        "sweep": [r for r in rows if r["N"] != N],
        "target": 5.0,
        "meets_target": headline["speedup"] >= 5.0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=10_000, help="inputs at the headline size")
    ap.add_argument("--T", type=int, default=100, help="MC passes")
    ap.add_argument("--p", type=float, default=0.3, help="drop probability (not the keep probability)")
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats per size")
    ap.add_argument("--sweep", default="10,100,1000", help="further input counts, comma-separated ('' for none)")
    ap.add_argument("--json", default=None, help="also write the result dict here")
    args = ap.parse_args(argv)
    sweep = tuple(int(s) for s in args.sweep.split(",") if s.strip())
    res = bench_mc(N=args.N, T=args.T, p=args.p, repeats=args.repeats, sweep=sweep, quiet=False)
    h = res["headline"]
    print(f"headline: T={h['T']} on N={h['N']}: {h['speedup']:.2f}x faster than the loop "
          f"(target {res['target']:.0f}x: {'met' if res['meets_target'] else 'NOT met'})")
    print(json.dumps(res["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
