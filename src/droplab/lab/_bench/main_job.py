"""Bench section ``main_job``: the default ``droplab compare`` against the same experiment in
plain PyTorch and against the GEMM-bound floor, all measured in one run.

* droplab: ``droplab compare`` itself (``cli.main``, defaults, ``--workers`` = the usable
  cores, a fresh ``--out``), timed from the call to its return: the figure a user sees,
  including worker start-up, journaling, results and plots.
* PyTorch: :mod:`droplab.lab._bench.torch_compare`, the same runs one after the other in
  this process on the usable cores.
* CPU seconds of each side (this process and the reaped workers) beside the wall times: on a
  loaded machine they are the steadier figure; the floor in core-seconds is the floor's
  seconds times the cores.
* floor: the FLOPs of every matrix product the experiment needs (each training step's forward,
  its weight gradients and the input gradients of every layer but the first; each epoch's
  validation forward; the final train and validation forwards) divided by the throughput of
  a large float32 GEMM on the usable cores, measured before and after the two timed runs
  (the median of all those products, in NumPy's BLAS and in torch, whichever is faster).

With several rounds the two implementations take turns and the figures are medians.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["experiment_flops", "gemm_throughput", "bench_main_job", "FULL", "QUICK", "TINY"]

#: epochs and rounds of the three sizes (``FULL``: the compare defaults)
FULL = {"epochs": None, "rounds": 1}
QUICK = {"epochs": 10, "rounds": 2}
TINY = {"epochs": 1, "rounds": 1}
GEMM_N = 2048


def experiment_flops(widths, n_train: int, n_val: int, batch_size: int, epochs: int, runs: int) -> dict:
    """FLOPs of the experiment's matrix products (a multiply-add counts 2), by kind."""
    pairs = list(zip(widths[:-1], widths[1:]))
    macs = sum(i * o for i, o in pairs)
    first = pairs[0][0] * pairs[0][1]
    batches = [min(batch_size, n_train - s) for s in range(0, n_train, batch_size)]
    rows = sum(batches)  # = n_train
    train = 2 * rows * (3 * macs - first) * epochs  # forward, dW, dx (not the first layer's)
    evaluation = 2 * n_val * macs * epochs + 2 * (n_train + n_val) * macs
    per_run = train + evaluation
    return {"train_per_run": train, "eval_per_run": evaluation, "per_run": per_run, "runs": runs,
            "total": per_run * runs}


def gemm_throughput(threads: int, n: int = GEMM_N, repeats: int = 7) -> dict:
    """Large float32 GEMM throughput (FLOP/s) on ``threads`` threads: NumPy's BLAS and torch."""
    from threadpoolctl import threadpool_limits

    from droplab.lab._bench import _torch, stats

    g = np.random.default_rng(0)
    a = g.standard_normal((n, n), dtype=np.float32)
    b = g.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    flops = 2.0 * n ** 3
    out = {"n": n, "threads": threads}
    def timed(fn) -> dict:  # one warm-up call, then ``repeats`` timed calls
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return stats(ts)

    with threadpool_limits(threads, user_api="blas"):
        out["numpy"] = timed(lambda: np.matmul(a, b, out=c))
    torch = _torch()
    if torch is not None:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tc = torch.empty_like(ta)
            out["torch"] = timed(lambda: torch.mm(ta, tb, out=tc))
        finally:
            torch.set_num_threads(old)
    out["flop_per_s"] = max(flops / out[k]["median_s"] for k in ("numpy", "torch") if k in out)
    return out


def _cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (loky's workers, once shut down)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return time.process_time()
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _droplab_compare(epochs: int, workers: int, seed: int) -> dict:
    from droplab.cli import main

    with tempfile.TemporaryDirectory(prefix="droplab-bench-") as d:
        out = Path(d) / "compare"
        argv = ["compare", "--quiet", "--out", str(out), "--workers", str(workers), "--seed", str(seed),
                "--epochs", str(epochs)]
        load = os.getloadavg()
        c0, t0 = _cpu_seconds(), time.perf_counter()
        rc = main(argv)
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - c0
        if rc != 0:
            raise RuntimeError(f"bench main_job: droplab {' '.join(argv)} exited {rc}")
        res = json.loads((out / "results.json").read_text())
    return {"seconds": seconds, "cpu_seconds": cpu, "load_average_before": list(load), "argv": argv,
            "runs": res["runs"],
            "config": res["config"]}


def _torch_compare(torch, ds, cfg, arms, seeds, epochs: int, threads: int) -> dict:
    from droplab.lab._bench import torch_compare

    load = os.getloadavg()
    res = torch_compare.run_experiment(torch, ds, arms=arms, seeds=seeds, hidden=cfg.hidden, epochs=epochs,
                                       batch_size=cfg.batch_size, lr=cfg.lr, threads=threads)
    res["load_average_before"] = list(load)
    return res


def _accuracy(runs, arms) -> dict:
    from droplab.lab import stats as lab_stats

    out = {}
    for label, _ in arms:
        vals = [r["metrics"]["val_accuracy"] for r in runs if r["arm"] == label and r.get("metrics")]
        out[label] = {"values": vals, **lab_stats.summary(vals)}
    return out


def bench_main_job(*, quick: bool = False, tiny: bool = False, progress=None, seed: int = 0,
                   epochs: int | None = None, rounds: int | None = None, torch_runs: int | None = None) -> dict:
    """The section's dict: the experiment's settings, the FLOP count, the GEMM throughput, each
    implementation's seconds (every round and the median), the ratios and the validation
    accuracies per arm.

    PyTorch runs twice per round: on the usable cores (``torch``, the baseline the targets name)
    and on one thread (``torch_1thread``: on a loaded machine PyTorch's spinning OpenMP threads
    can make the first 10-20x slower, and the faster of the two is the fair baseline).
    ``torch_runs`` (scripts only): time only the first k runs of each PyTorch variant and scale
    its time by runs / k (recorded as ``torch_extrapolated``); the runs cost the same FLOPs.
    """
    from droplab import _validate
    from droplab.lab import compare, experiment, runner
    from droplab.lab._bench import _torch, stats
    from droplab.lab.flags import DEFAULTS

    size = TINY if tiny else QUICK if quick else FULL
    cfg = experiment.RunConfig()
    epochs = epochs or size["epochs"] or cfg.epochs
    rounds = rounds or size["rounds"]
    cores = _validate.usable_cores()
    ds = runner.dataset(cfg)
    n_seeds, p = int(DEFAULTS["seeds"]), float(DEFAULTS["p"])
    seeds = [seed + i for i in range(n_seeds)]
    arms = [("no dropout", 0.0), (f"dropout p={p:g}", p)]
    n_runs = len(arms) * n_seeds
    widths = [int(np.prod(ds.input_shape)), *cfg.hidden, int(ds.classes)]
    flops = experiment_flops(widths, len(ds.y_train), len(ds.y_val), cfg.batch_size, epochs, n_runs)
    torch = _torch()
    variants = {"torch": cores, "torch_1thread": 1} if cores > 1 else {"torch": 1}
    k = min(torch_runs or n_runs, n_runs)
    # the runs of a truncated PyTorch timing: the first k in arm-major order
    pairs = [(label, pp, s) for label, pp in arms for s in seeds][:k]
    if progress:
        progress("main job: GEMM throughput")
    gemm = [gemm_throughput(cores)]
    times: dict[str, list[float]] = {"droplab": [], **({v: [] for v in variants} if torch is not None else {})}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    loads: dict[str, list] = {name: [] for name in times}
    last: dict[str, dict] = {}
    for r in range(rounds):
        if progress:
            progress(f"main job: droplab compare, round {r + 1} of {rounds}")
        d = _droplab_compare(epochs, cores, seed)
        times["droplab"].append(d["seconds"])
        cpu["droplab"].append(d["cpu_seconds"])
        loads["droplab"].append(d["load_average_before"])
        last["droplab"] = d
        if torch is None:
            continue
        for name, threads in variants.items():
            if progress:
                progress(f"main job: PyTorch on {threads} thread(s), round {r + 1} of {rounds}")
            load = os.getloadavg()
            runs, secs = [], 0.0
            c0 = _cpu_seconds()
            for label, pp, s in pairs:
                t = _torch_compare(torch, ds, cfg, [(label, pp)], [s], epochs, threads)
                runs += t["runs"]
                secs += t["seconds"]
            times[name].append(secs * n_runs / k)
            cpu[name].append((_cpu_seconds() - c0) * n_runs / k)
            loads[name].append(list(load))
            last[name] = {"runs": runs}
    gemm.append(gemm_throughput(cores))
    flop_s = float(np.median([g["flop_per_s"] for g in gemm]))
    floor = flops["total"] / flop_s
    med = {name: float(np.median(v)) for name, v in times.items() if v}
    d_runs = last["droplab"]["runs"]
    out = {
        "config": {"dataset": ds.name, "widths": widths, "epochs": epochs, "batch_size": cfg.batch_size,
                   "optimizer": f"{cfg.optimizer} lr={cfg.lr:g}", "seeds": seeds, "arms": [a for a, _ in arms],
                   "workers": cores, "torch_threads": variants if torch is not None else None,
                   "rounds": rounds, "droplab_argv": last["droplab"]["argv"],
                   "compare_quick_epochs": compare.QUICK["epochs"]},
        "flops": flops,
        "gemm": gemm,
        "gemm_flop_per_s": flop_s,
        "floor_s": floor,
        "seconds": {name: stats(v) for name, v in times.items() if v},
        "rounds_s": times,
        # CPU seconds (every thread and worker): steadier than wall time on a loaded machine, and
        # what a spinning thread pool wastes counts too
        "cpu_s": {name: stats(v) for name, v in cpu.items() if v},
        "floor_core_s": floor * cores,
        "load_average_before": loads,
        "droplab_train_seconds": sum(r["metrics"]["seconds_per_epoch"] * epochs for r in d_runs if r.get("metrics")),
        "droplab_over_floor": med["droplab"] / floor,
        "droplab_gflop_per_s": flops["total"] / med["droplab"] / 1e9,
        "accuracy": {"droplab": _accuracy(d_runs, arms)},
    }
    if torch is None:
        out["torch_skipped"] = "PyTorch is not installed"
        return out
    if k < n_runs:
        out["torch_extrapolated"] = {"timed_runs": k, "runs": n_runs}
    cmed = {name: float(np.median(v)) for name, v in cpu.items() if v}
    out["droplab_cpu_over_floor"] = cmed["droplab"] / (floor * cores)
    for name in variants:
        out[f"droplab_vs_{name}"] = med[name] / med["droplab"]
        out[f"droplab_cpu_vs_{name}"] = cmed[name] / cmed["droplab"]
        out[f"{name}_over_floor"] = med[name] / floor
        out["accuracy"][name] = _accuracy(last[name]["runs"], arms)
    out["droplab_vs_best_torch"] = min(med[name] for name in variants) / med["droplab"]
    return out
