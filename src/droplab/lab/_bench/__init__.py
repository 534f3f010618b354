"""The measured cases of ``droplab bench``; ``benchmarks/*.py`` are thin scripts over these.

Every figure is the median and spread (quartiles, min, max) of ``repeats`` timed runs after
warm-up. Implementations compared in one figure are timed round-robin, repeat by repeat, so
load from other processes on a shared machine hits them alike, and every ratio is computed
from medians measured in the same run (``ratio(a, b)`` = median of ``b`` / median of ``a``:
how many times faster ``a`` is).

Sections (each returns a JSON-ready dict):

* ``dropout``: forward, backward and forward+backward of dropout on float32 arrays for each
  implementation, with ``np.copyto`` on the same arrays as the bandwidth reference, and the
  mask bytes each implementation holds per element between forward and backward;
* ``spiral``: one full-batch training epoch of the textbook spiral network in droplab, in
  the textbook float64 NumPy code (:mod:`droplab.lab._bench.textbook`) and in PyTorch;
* ``blas``: training steps with 1 and 2 BLAS threads (the policy fit applies);
* ``compile``: numba's compile cost in a fresh process, cold (empty cache) and warm;
* ``conv1d``: forward+backward of the MNIST-1D paper CNN's three ``Conv1d`` layers against
  PyTorch CPU on the same weights;
* ``main_job``: the default ``droplab compare`` against the same experiment in plain PyTorch
  (:mod:`droplab.lab._bench.torch_compare`) and the GEMM-bound floor
  (:mod:`droplab.lab._bench.main_job`);
* ``torch`` and ``mc``: ``bench_torch`` / ``bench_mc`` from ``benchmarks/torch_bench.py`` and
  ``benchmarks/mc_bench.py``, loaded from the checkout when present.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["SIZES", "QUICK_SIZES", "TINY", "stats", "timings", "machine", "bench_dropout", "bench_spiral",
           "bench_blas", "bench_compile", "bench_conv1d", "load_benchmark", "run_suite"]

SIZES = {"1M": (1 << 20,), "3000x512": (3000, 512), "16M": (1 << 24,)}
QUICK_SIZES = {"3000x512": (3000, 512)}
#: settings of the hidden ``--tiny`` flag (tests): every section, tiny shapes, few repeats
TINY = {"sizes": {"4K": (4096,), "64x80": (64, 80)}, "repeats": 3, "ps": (0.5,), "spiral_per_class": 50,
        "spiral_hidden": 32, "epochs_per_repeat": 1}

REPO = Path(__file__).resolve().parents[4]  # src/droplab/lab/_bench -> the checkout's root


# --- timing -------------------------------------------------------------------------------

def stats(ts) -> dict:
    """Median and spread of timings in seconds."""
    a = np.asarray(ts, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3), "iqr_s": float(q3 - q1),
            "min_s": float(a.min()), "max_s": float(a.max()), "repeats": int(a.size)}


def median_iqr(fn, repeats: int = 21, warmup: int = 2) -> tuple[float, float]:
    """Median and interquartile range, in seconds, of ``repeats`` timed calls after ``warmup``."""
    s = timings({"fn": fn}, repeats, warmup=warmup)["fn"]
    return s["median_s"], s["iqr_s"]


#: How :func:`timings` runs each figure (recorded in results.json).
TIMING = ("each implementation timed in 3 rounds of consecutive calls, the rounds taking turns "
          "between implementations; 2 warm-up calls first, and the first call of every round untimed")


def timings(fns: dict, repeats: int, rounds: int = 3, warmup: int = 2, setup: dict | None = None) -> dict:
    """Time each function ``repeats`` times; ``setup[name]`` runs untimed before each call.

    The calls come in ``rounds`` blocks per function, and the blocks take turns between the
    functions, so a drift in machine load hits every function alike. Within a block the calls
    are consecutive, as in a training loop: timing them one by one in turn made each call pay
    for the state the previous, different function left (a cache full of its dirty lines, its
    thread pool still spinning), which slowed the copy-speed kernels by up to half. The first
    call of each block settles that state and is not timed.
    """
    setup = setup or {}

    def call(name, fn):
        if name in setup:
            setup[name]()
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    for name, fn in fns.items():
        for _ in range(warmup):
            call(name, fn)
    ts: dict[str, list[float]] = {name: [] for name in fns}
    rounds = max(1, min(rounds, repeats))
    for r in range(rounds):
        k = repeats // rounds + (r < repeats % rounds)
        for name, fn in fns.items():
            call(name, fn)
            ts[name].extend(call(name, fn) for _ in range(k))
    return {name: stats(v) for name, v in ts.items()}


def ratio(fast: dict, slow: dict) -> float:
    """How many times faster ``fast`` is than ``slow``: the ratio of their medians."""
    return slow["median_s"] / fast["median_s"]


# --- the machine --------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_sha() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    sha = r.stdout.strip()
    return (sha + ("-dirty" if dirty else "")) if r.returncode == 0 and sha else None


def _blas_config() -> dict:
    out: dict = {}
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        out["numpy_build"] = {k: b.get(k) for k in ("name", "version", "openblas configuration") if k in b}
    except Exception:  # noqa: BLE001 - informational only
        pass
    try:
        from threadpoolctl import threadpool_info

        out["threadpools"] = [{k: v for k, v in d.items() if k != "filepath"} for d in threadpool_info()]
    except Exception:  # noqa: BLE001
        pass
    return out


def machine() -> dict:
    """CPU, cores, load, BLAS, thread settings, git sha and the kernels' backend."""
    from droplab import kernels

    info = {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "git_sha": _git_sha(), "kernels_backend": kernels.backend(), "blas": _blas_config(),
            "thread_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                      "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
                                                      "DROPLAB_KERNELS") if k in os.environ}}
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    if "numba" in sys.modules:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet
            info["numba_threading_layer"] = str(numba.config.THREADING_LAYER)
    return info


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- dropout throughput ---------------------------------------------------------------------

def _held_bytes(obj) -> int:
    """Bytes of the arrays an object keeps in its attributes (one level into tuples/lists)."""
    total = 0
    for v in vars(obj).values():
        items = v if isinstance(v, (tuple, list)) else (v,)
        for a in items:
            if isinstance(a, np.ndarray):
                total += a.nbytes
    return total


class _NumpyF32Dropout:
    """The plain NumPy float32 layer: a boolean mask from ``rng.random(...) < keep``, stored."""

    def __init__(self, p: float, seed: int = 0) -> None:
        self.keep = 1.0 - p
        self.scale = np.float32(1.0 / self.keep)
        self.rng = np.random.default_rng(seed)

    def forward(self, x):
        self.mask = self.rng.random(x.shape, dtype=np.float32) < self.keep
        y = x * self.mask
        y *= self.scale
        return y

    def backward(self, dy):
        dx = dy * self.mask
        dx *= self.scale
        return dx


def torch_saved_bytes(torch, fn) -> int:
    """Bytes of the tensors autograd packs for backward while ``fn()`` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def bench_dropout(sizes=None, ps=(0.1, 0.5), repeats: int = 21, progress=None) -> dict:
    """Throughput of each dropout implementation on float32 arrays, with ``np.copyto`` beside it.

    Effective bandwidth counts what the operation must move as float32: forward reads x and
    writes y (8 bytes per element), backward reads dy and writes dx (8), forward+backward 16;
    ``np.copyto`` reads and writes 8. ``fraction_of_copyto`` is copyto's median time over
    droplab's forward median: the share of copy bandwidth the forward reaches.

    ``droplab`` is the layer (``nn.Dropout``, default mode), which returns a new array each
    call. Results of 32 MiB or more come from the kernels' free list (the caller dropped the
    last one), so at 16M it writes into recycled memory as ``np.copyto`` does; smaller ones
    come from malloc, which recycles them itself. ``np_copy`` (``np.copy``, a copy into a new
    array, fresh pages at 16M) is given beside it. ``droplab_out`` is the same kernel writing
    into one preallocated array, like ``np.copyto``.
    """
    from droplab import nn
    from droplab.lab._bench.textbook import Layer_Dropout

    torch = _torch()
    sizes = SIZES if sizes is None else sizes
    rows, masks = [], {}
    for name, shape in sizes.items():
        n = int(np.prod(shape))
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(shape, dtype=np.float32)
        y_copy = np.empty_like(x)
        for p in ps:
            if progress:
                progress(f"dropout {name} p={p}")
            np.random.seed(0)
            ours = nn.Dropout(p, seed=0)
            book = Layer_Dropout(p)
            plain = _NumpyF32Dropout(p)
            from droplab import kernels

            y_out, dx_out = np.empty_like(x), np.empty_like(x)
            scale = kernels.keep_scale(p)
            impls = {
                "droplab": (lambda: ours.forward(x), lambda: ours.backward(dy)),
                # the same kernel writing into preallocated arrays (what np.copyto does)
                "droplab_out": (lambda: ours.rng.at(0).apply(x, p, scale, out=y_out),
                                lambda: ours.rng.at(0).apply(dy, p, scale, out=dx_out)),
                "textbook": (lambda: book.forward(x, True), lambda: book.backward(dy)),
                "numpy_f32": (lambda: plain.forward(x), lambda: plain.backward(dy)),
            }
            setups_b = {}
            if torch is not None:
                xt = torch.from_numpy(x).requires_grad_()
                dyt = torch.from_numpy(dy)
                holder = {}

                def t_fwd():
                    holder["y"] = torch.nn.functional.dropout(xt, p, training=True)

                def t_bwd():
                    holder["y"].backward(dyt)
                    xt.grad = None

                impls["torch"] = (t_fwd, t_bwd)
                setups_b["torch"] = t_fwd
            # every implementation has run its forward once before its backward is timed
            for f, _ in impls.values():
                f()
            fwd = timings({"copyto": lambda: np.copyto(y_copy, x), "np_copy": lambda: np.copy(x),
                               **{k: f for k, (f, _) in impls.items()}}, repeats)
            bwd = timings({k: b for k, (_, b) in impls.items()}, repeats, setup=setups_b)
            both = timings({k: (lambda f=f, b=b: (f(), b())) for k, (f, b) in impls.items()}, repeats)
            if torch is not None:
                holder.clear()
            for phase, res, nbytes in (("forward", fwd, 8), ("backward", bwd, 8), ("forward+backward", both, 16)):
                for impl, st in res.items():
                    med = st["median_s"]
                    row = {"shape": name, "elements": n, "p": p, "phase": phase, "impl": impl, **st,
                           "gelem_per_s": n / med / 1e9, "effective_gb_per_s": n * nbytes / med / 1e9}
                    if impl not in ("droplab", "droplab_out") and "droplab" in res:
                        row["droplab_speedup"] = ratio(res["droplab"], st)
                    if phase == "forward" and impl in ("droplab", "droplab_out"):
                        row["fraction_of_copyto"] = ratio(st, res["copyto"])
                        row["fraction_of_np_copy"] = ratio(st, res["np_copy"])
                    rows.append(row)
            if name not in masks:
                masks[name] = _mask_bytes(ours, book, plain, torch, x, p)
    return {"rows": rows, "mask_bytes_per_element": masks,
            "bytes_model": {"forward": 8, "backward": 8, "forward+backward": 16, "copyto": 8}}


def _mask_bytes(ours, book, plain, torch, x, p) -> dict:
    """Bytes per element each implementation holds between its forward and its backward."""
    n = x.size
    ours.forward(x)
    out = {"droplab": (_held_bytes(ours) + sum(a.nbytes for a in (ours._state or ()) if isinstance(a, np.ndarray)))
           / n}
    out["droplab_out"] = out["droplab"]  # the same layer's kernel: nothing kept between the calls
    book.forward(x, True)
    out["textbook"] = book.binary_mask.nbytes / n
    plain.forward(x)
    out["numpy_f32"] = plain.mask.nbytes / n
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        out["torch"] = torch_saved_bytes(torch, lambda: torch.nn.functional.dropout(xt, p, training=True)) / n
    return out


# --- the spiral epoch -------------------------------------------------------------------------

def _droplab_spiral(X, y, hidden, p, lr, decay, seed=0):
    from droplab import nn

    model = nn.Sequential(nn.Dense(2, hidden), nn.ReLU(), nn.Dropout(p), nn.Dense(hidden, 3), seed=seed)
    loss, opt = nn.SoftmaxCrossEntropy(), nn.Adam(lr, decay=decay)
    return lambda epochs: model.fit(X, y, loss=loss, optimizer=opt, epochs=epochs, verbose=False)


def _torch_spiral(torch, X, y, hidden, p, lr, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.ReLU(), torch.nn.Dropout(p),
                                torch.nn.Linear(hidden, 3))
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)
    ce = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run(epochs):
        for _ in range(epochs):
            opt.zero_grad()
            out = model(Xt)
            loss = ce(out, yt)
            loss.backward()
            opt.step()
            loss.item(), (out.argmax(1) == yt).float().mean().item()
    return run


def bench_spiral(repeats: int = 21, per_class: int = 1000, hidden: int = 512, p: float = 0.1,
                 epochs_per_repeat: int = 5, progress=None) -> dict:
    """Seconds per full-batch training epoch of the spiral network (2 -> hidden -> 3, ReLU,
    dropout p, softmax cross-entropy, Adam lr 0.05 decay 5e-5) in droplab (float32), the
    textbook float64 NumPy code and PyTorch CPU (float32, default threads). Each repeat runs
    ``epochs_per_repeat`` epochs; the figures are per epoch."""
    from droplab import data
    from droplab.lab._bench.textbook import SpiralNetwork

    if progress:
        progress("spiral epoch")
    X, y = data.spiral(per_class, 3, seed=0)
    X64 = X.astype(np.float64)
    np.random.seed(0)
    book = SpiralNetwork(hidden=hidden, p=p, lr=0.05, decay=5e-5)
    fns = {"droplab": _droplab_spiral(X, y, hidden, p, 0.05, 5e-5),
           "textbook": lambda k: [book.epoch(X64, y) for _ in range(k)]}
    torch = _torch()
    if torch is not None:
        fns["torch"] = _torch_spiral(torch, X, y.astype(np.int64), hidden, p, 0.05)
    k = epochs_per_repeat
    res = timings({name: (lambda f=f: f(k)) for name, f in fns.items()}, repeats)
    per_epoch = {name: {key: (v / k if key.endswith("_s") else v) for key, v in st.items()}
                 for name, st in res.items()}
    out = {"config": {"samples": 3 * per_class, "hidden": hidden, "p": p, "optimizer": "adam lr=0.05 decay=5e-5",
                      "batch": "full", "epochs_per_repeat": k,
                      "torch_threads": torch.get_num_threads() if torch is not None else None},
           "per_epoch": per_epoch, "speedup": {}}
    for name in per_epoch:
        if name != "droplab":
            out["speedup"][f"droplab_vs_{name}"] = ratio(per_epoch["droplab"], per_epoch[name])
    return out


# --- BLAS threads during training -------------------------------------------------------------

def _train_steps(model, loss, opt, X, y, batch, steps):
    params = model.parameters()
    n = len(X)
    for s in range(steps):
        i = (s * batch) % max(1, n - batch + 1)
        xb, yb = X[i:i + batch], y[i:i + batch]
        loss(model.forward(xb), yb)
        model.zero_grad()
        model._backward(loss.backward(), False)
        opt.step(params)


def bench_blas(repeats: int = 21, threads=(1, 2), progress=None, tiny: bool = False) -> dict:
    """Training steps (as fit runs them) under 1 and 2 BLAS threads: the MNIST-1D MLP
    (40-256-256-10, p = 0.3, batches of 100, 10 steps) and the spiral network (full batch)."""
    from threadpoolctl import threadpool_limits

    from droplab import data, nn
    from droplab.lab import models

    if progress:
        progress("BLAS threads")
    rng = np.random.default_rng(0)
    Xm = rng.standard_normal((1000, 40)).astype(np.float32)
    ym = rng.integers(0, 10, 1000)
    Xs, ys = data.spiral(50 if tiny else 1000, 3, seed=0)
    cases = {
        "mnist1d_mlp_10_steps": (models.mlp(40, (256, 256), 10, p=0.3, seed=0), Xm, ym, 100, 10),
        "spiral_epoch": (nn.Sequential(nn.Dense(2, 512), nn.ReLU(), nn.Dropout(0.1), nn.Dense(512, 3), seed=0),
                         Xs, ys, len(Xs), 1),
    }
    out = {}
    for case, (model, X, y, batch, steps) in cases.items():
        loss, opt = nn.SoftmaxCrossEntropy(), nn.Adam(1e-3)
        fns = {}
        for t in threads:
            def run(t=t):
                with threadpool_limits(t, user_api="blas"):
                    _train_steps(model, loss, opt, X, y, batch, steps)
            fns[f"{t}_thread{'s' if t > 1 else ''}"] = run
        res = timings(fns, repeats)
        names = list(res)
        out[case] = {"times": res, "speedup_1_vs_others": {n: ratio(res[names[0]], res[n]) for n in names[1:]}}
    return out


# --- numba compile cost ---------------------------------------------------------------------

_COMPILE_PROBE = r"""
import json, os, time
t0 = time.perf_counter()
import numpy as np
import numba
t_numba = time.perf_counter() - t0
from droplab import kernels, nn, data
out = {"import_numba_s": t_numba}
x = np.ones(1 << 17, np.float32)
t = time.perf_counter(); kernels.apply(x, 0.5, (1, 2), 0, 2.0); out["apply_parallel_f32_s"] = time.perf_counter() - t
t = time.perf_counter(); kernels.apply(x[:100], 0.5, (1, 2), 0, 2.0); out["apply_serial_f32_s"] = time.perf_counter() - t
t = time.perf_counter(); kernels.apply(x.astype(np.float64), 0.5, (1, 2), 0, 2.0)
out["apply_parallel_f64_s"] = time.perf_counter() - t
X, y = data.spiral(100, 3, seed=0)
m = nn.Sequential(nn.Dense(2, 64), nn.ReLU(), nn.Dropout(0.1), nn.Dense(64, 3), seed=0)
t = time.perf_counter()
m.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.05), epochs=1, verbose=False)
out["first_fit_epoch_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - t0
out["backend"] = kernels.backend()
print(json.dumps(out))
"""


def _probe(env) -> dict:
    r = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_compile(cold: bool = True, progress=None) -> dict:
    """The first kernel calls in a fresh interpreter: cold (an empty ``NUMBA_CACHE_DIR``) and
    warm (the same folder, now filled). With ``cold=False`` only a warm run, on the default
    cache (filled by this process's own calls)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[3])]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    out = {}
    if cold:
        with tempfile.TemporaryDirectory(prefix="droplab-numba-cache-") as d:
            env["NUMBA_CACHE_DIR"] = d
            if progress:
                progress("numba compile, cold cache")
            out["cold"] = _probe(env)
            if progress:
                progress("numba compile, warm cache")
            out["warm"] = _probe(env)
    else:
        if progress:
            progress("numba compile, warm cache")
        out["warm"] = _probe(env)
        out["cold"] = None
    return out


# --- Conv1d on the MNIST-1D CNN's shapes ------------------------------------------------------

#: The MNIST-1D paper's CNN (Greydanus 2020): (in channels, out channels, kernel, input length),
#: each with stride 2 and padding 1 (40 -> 19 -> 10 -> 5).
CONV1D_LAYERS = ((1, 25, 5, 40), (25, 25, 3, 19), (25, 25, 3, 10))


def bench_conv1d(repeats: int = 21, batches=(100, 1000), progress=None) -> dict:
    """Forward + backward (input, weight and bias gradients) of the three ``Conv1d`` layers of
    the MNIST-1D paper's CNN, one after another, in droplab (float32, one BLAS thread, as
    ``fit`` trains) and in PyTorch CPU (float32, 2 threads), on the same weights and inputs.
    Batch 100 is the paper's training batch. ``droplab_over_torch`` is droplab's median time
    over PyTorch's (below 1: droplab is faster); ``droplab_over_torch_1thread`` the same
    against PyTorch on one thread."""
    from threadpoolctl import threadpool_limits

    from droplab import nn

    if progress:
        progress("conv1d")
    torch = _torch()
    rng = np.random.default_rng(0)
    ours = [nn.Conv1d(c, o, k, stride=2, padding=1, init="torch", seed=i) for i, (c, o, k, _) in
            enumerate(CONV1D_LAYERS)]
    rows = []
    threads = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            theirs = [torch.nn.Conv1d(c, o, k, stride=2, padding=1) for c, o, k, _ in CONV1D_LAYERS]
            with torch.no_grad():
                for m, t in zip(ours, theirs):
                    t.weight[:] = torch.from_numpy(m.weight.value)
                    t.bias[:] = torch.from_numpy(m.bias.value)
        for n in batches:
            xs = [rng.standard_normal((n, c, length)).astype(np.float32) for c, _, _, length in CONV1D_LAYERS]

            def droplab(xs=xs):
                for m, x in zip(ours, xs):
                    y = m.forward(x)
                    m.backward(np.ones_like(y))
            fns = {"droplab": droplab}
            if torch is not None:
                txs = [torch.from_numpy(x).requires_grad_() for x in xs]

                def pytorch(txs=txs, threads=2):
                    torch.set_num_threads(threads)  # the first call of each timed round is untimed
                    for t, x in zip(theirs, txs):
                        y = t(x)
                        y.backward(torch.ones_like(y))
                # also on one thread: on a loaded machine two spinning OpenMP threads can be many
                # times slower, and the one-thread figure shows what the ratio is without that
                fns["torch"], fns["torch_1thread"] = pytorch, lambda: pytorch(threads=1)
            with threadpool_limits(1, user_api="blas"):
                res = timings(fns, repeats)
            row = {"batch": n, **res}
            for name in ("torch", "torch_1thread"):
                if name in res:
                    row[f"droplab_over_{name}"] = res["droplab"]["median_s"] / res[name]["median_s"]
            rows.append(row)
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    return {"config": {"layers": [list(c) for c in CONV1D_LAYERS], "stride": 2, "padding": 1, "dtype": "float32",
                       "droplab_blas_threads": 1, "torch_threads": 2 if torch is not None else None},
            "rows": rows}


# --- sections from benchmarks/ -----------------------------------------------------------------

def load_benchmark(name: str):
    """``benchmarks/<name>.py`` of the checkout as a module, or None when it is not there."""
    path = REPO / "benchmarks" / f"{name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"droplab_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _external(name: str, func: str, kwargs: dict, needs_torch: bool = False) -> dict:
    if needs_torch and _torch() is None:
        return {"skipped": "PyTorch is not installed"}
    module = load_benchmark(name)
    if module is None or not hasattr(module, func):
        return {"skipped": f"benchmarks/{name}.py with {func}() not found (run from a droplab checkout)"}
    return {"result": getattr(module, func)(**kwargs)}


# --- everything --------------------------------------------------------------------------------

SECTIONS = ("dropout", "spiral", "blas", "compile", "torch", "mc", "conv1d", "main_job")


def run_suite(*, quick: bool = False, tiny: bool = False, repeats: int | None = None,
              sections=SECTIONS, progress=None) -> dict:
    """Run the chosen sections; returns the dict ``droplab bench`` writes (without versions)."""
    from droplab import kernels

    if tiny:
        sizes, reps, ps = TINY["sizes"], TINY["repeats"], TINY["ps"]
    elif quick:
        sizes, reps, ps = QUICK_SIZES, 20, (0.5,)
    else:
        sizes, reps, ps = SIZES, 21, (0.1, 0.5)
    reps = repeats or reps
    # compile / load every kernel first: nothing timed below includes a compile
    for dt in (np.float32, np.float64):
        kernels.apply(np.ones(1 << 17, dt), 0.5, (0, 0), 0, 2.0)
        kernels.apply(np.ones(64, dt), 0.5, (0, 0), 0, 2.0)
    out: dict = {"settings": {"quick": quick, "tiny": tiny, "repeats": reps, "sizes": {k: list(v) for k, v in
                                                                                    sizes.items()},
                              "ps": list(ps), "sections": list(sections), "timing": TIMING}}
    t0 = time.perf_counter()
    if "dropout" in sections:
        out["dropout"] = bench_dropout(sizes, ps, reps, progress)
    if "spiral" in sections:
        kw = ({"per_class": TINY["spiral_per_class"], "hidden": TINY["spiral_hidden"],
               "epochs_per_repeat": TINY["epochs_per_repeat"]} if tiny else
              {"epochs_per_repeat": 2 if quick else 5})
        out["spiral"] = bench_spiral(reps, progress=progress, **kw)
    if "blas" in sections:
        out["blas"] = bench_blas(reps, progress=progress, tiny=tiny)
    if "compile" in sections:
        out["compile"] = bench_compile(cold=not (quick or tiny), progress=progress)
    if "torch" in sections:
        if progress:
            progress("torch modules")
        tshapes = {k: v for k, v in sizes.items() if k in ("3000x512", "16M")} or dict(list(sizes.items())[:1])
        if quick:
            tshapes = {"3000x512": (3000, 512)}
        out["torch"] = _external("torch_bench", "bench_torch", {"shapes": tshapes, "repeats": reps}, True)
    if "mc" in sections:
        if progress:
            progress("mc_predict")
        # the figure of issue 18 (T = 100 on 10,000 inputs); a PyTorch loop repeat takes seconds,
        # so the full size takes at most 7 repeats of each side
        kw = ({"N": 50, "T": 4, "repeats": min(reps, 3)} if tiny else
              {"N": 1000, "T": 100, "repeats": min(reps, 5)} if quick else
              {"N": 10_000, "T": 100, "repeats": min(reps, 7)})
        out["mc"] = _external("mc_bench", "bench_mc", kw)
    if "conv1d" in sections:
        out["conv1d"] = bench_conv1d(reps, batches=(8,) if tiny else (100,) if quick else (100, 1000),
                                     progress=progress)
    if "main_job" in sections:
        from droplab.lab._bench.main_job import bench_main_job

        out["main_job"] = bench_main_job(quick=quick, tiny=tiny, progress=progress)
    out["seconds"] = time.perf_counter() - t0
    out["headline"] = headline(out)
    return out


def headline(res: dict) -> dict:
    """The acceptance figures, from this run's rows (None where a section did not run)."""
    h: dict = {}
    d = res.get("dropout")
    if d:
        rows = d["rows"]
        big = max(r["elements"] for r in rows)
        pbig = 0.5 if any(r["p"] == 0.5 for r in rows) else rows[0]["p"]

        def get(impl, phase="forward"):
            return next((r for r in rows if r["elements"] == big and r["p"] == pbig and r["impl"] == impl
                         and r["phase"] == phase), None)
        ours = get("droplab")
        h["forward_shape"] = ours["shape"]
        h["forward_p"] = pbig
        h["forward_fraction_of_copyto"] = ours["fraction_of_copyto"]
        h["forward_fraction_of_np_copy"] = ours["fraction_of_np_copy"]
        out_row = get("droplab_out")
        h["forward_out_fraction_of_copyto"] = out_row["fraction_of_copyto"] if out_row else None
        for impl in ("textbook", "torch", "numpy_f32"):
            r = get(impl)
            h[f"forward_speedup_vs_{impl}"] = r["droplab_speedup"] if r else None
            h[f"forward_out_speedup_vs_{impl}"] = (ratio(out_row, r) if r and out_row else None)
        h["mask_bytes_per_element"] = d["mask_bytes_per_element"][ours["shape"]]
    s = res.get("spiral")
    if s:
        h["spiral_epoch_ms"] = {k: v["median_s"] * 1e3 for k, v in s["per_epoch"].items()}
        h["spiral_speedup"] = s["speedup"]
    return h
