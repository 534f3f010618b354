"""The main job's step path: the bench section ``main_job`` (FLOP count, structure, same-run
ratios) and the fused optimizer updates. No timing assertions."""

import numpy as np
import pytest

from droplab.lab._bench import main_job


def test_flop_count_of_the_default_experiment():
    # 40-256-256-10: 78,336 multiply-adds per row; the first layer's input gradient is not computed
    f = main_job.experiment_flops([40, 256, 256, 10], 4000, 1000, 100, 150, 6)
    macs, first = 40 * 256 + 256 * 256 + 256 * 10, 40 * 256
    assert f["train_per_run"] == 2 * 4000 * (3 * macs - first) * 150
    assert f["eval_per_run"] == 2 * 1000 * macs * 150 + 2 * 5000 * macs
    assert f["total"] == 6 * (f["train_per_run"] + f["eval_per_run"])
    assert 1.6e12 < f["total"] < 1.8e12  # the "about 1.7 TFLOP"
    # a last, short batch counts its own rows
    g = main_job.experiment_flops([3, 2], 250, 0, 100, 1, 1)
    assert g["train_per_run"] == 2 * 250 * (3 * 6 - 6)


@pytest.fixture(scope="module")
def section():
    pytest.importorskip("torch")
    return main_job.bench_main_job(tiny=True, torch_runs=1)


def test_main_job_section_ratios_come_from_this_run(section):
    s = section
    assert s["config"]["epochs"] == 1 and s["config"]["widths"] == [40, 256, 256, 10]
    assert s["config"]["droplab_argv"][:1] == ["compare"] and "--workers" in s["config"]["droplab_argv"]
    assert s["floor_s"] == pytest.approx(s["flops"]["total"] / s["gemm_flop_per_s"])
    med = {k: v["median_s"] for k, v in s["seconds"].items()}
    assert s["droplab_over_floor"] == pytest.approx(med["droplab"] / s["floor_s"])
    for name in s["config"]["torch_threads"]:
        assert s[f"droplab_vs_{name}"] == pytest.approx(med[name] / med["droplab"])
    assert s["droplab_vs_best_torch"] == pytest.approx(min(med[n] for n in s["config"]["torch_threads"])
                                                       / med["droplab"])
    assert s["torch_extrapolated"] == {"timed_runs": 1, "runs": 6}
    acc = s["accuracy"]["droplab"]
    assert set(acc) == {"no dropout", "dropout p=0.3"} and all(v["n"] == 3 for v in acc.values())
    assert all(len(v) == 1 for v in s["load_average_before"].values())


def test_main_job_tables_fit_the_report(section):
    from droplab.lab import bench

    tabs = bench.bench_tables({"main_job": section})
    assert [t["title"].split(":")[0] for t in tabs] == ["main job", "main job"]


# --- the fused Adam / AdamW update ---------------------------------------------------------------

from droplab import kernels, nn  # noqa: E402
from droplab.nn import optim  # noqa: E402
from droplab.nn.module import Parameter  # noqa: E402

needs_numba = pytest.mark.skipif(kernels.backend() != "numba", reason="the fused update needs numba")
SHAPES = ((40, 256), (256,), (256, 10), (10,), (3, 1))


def _params(rng, dtype):
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def _numpy_steps(opt, params):
    """The NumPy update, parameter by parameter (what Adam.step does without numba)."""
    lr = opt.current_lr
    for p in params:
        opt._update(p, lr)
    opt.iterations += 1


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda: nn.Adam(1e-2), lambda: nn.AdamW(1e-2, weight_decay=0.1),
                                  lambda: nn.Adam(3e-3, beta1=0.5, beta2=0.9, eps=1e-3, decay=0.01)],
                         ids=["adam", "adamw", "adam-options"])
def test_fused_update_equals_the_numpy_update_bit_for_bit(rng, dtype, make):
    fused, plain = make(), make()
    a = _params(rng, dtype)
    b = [Parameter(p.value.copy()) for p in a]
    for _ in range(30):
        for p, q in zip(a, b):  # gradients over 10 orders of magnitude, some exactly zero
            g = (rng.standard_normal(p.value.shape) * 10.0 ** rng.uniform(-6, 4)).astype(dtype)
            g[rng.random(g.shape) < 0.1] = 0
            p.grad[...] = g
            q.grad[...] = g
        fused.step(a)
        _numpy_steps(plain, b)
    assert fused.iterations == plain.iterations == 30
    for p, q in zip(a, b):
        assert p.value.dtype == dtype
        np.testing.assert_array_equal(p.value, q.value)
        for slot in ("m", "v"):
            np.testing.assert_array_equal(fused._state[id(p)][slot], plain._state[id(q)][slot])


@needs_numba
def test_fused_adam_matches_textbook_adam_within_float32_rounding(rng):
    """One float32 step from a random state against Adam in float64 with exact constants.

    Bound, per element, to first order in u = 2**-24 (each float32 operation and each constant
    rounded once, relative error <= u):
      m' = b1 m + (1-b1) g: 5 roundings (2 constants, 2 products, the sum) on terms of total size
         A = |b1 m| + |(1-b1) g|: |dm| <= 5u A;
      v' = b2 v + (1-b2) g^2: positive terms, 6 roundings: |dv| <= 6u v';
      D = sqrt(v' / (1-b2^t)) + eps: 6u/2 from v', (constant + division)/2 = u, the sqrt u,
         eps and the sum 2u: relative <= 7u;
      s = lr / (1-b1^t) rounded once, s m', / D: the update U = s m' / D has
         |dU| <= (s / D) 5u A + (3u + 7u) |U|;
      w' = w - U rounded: + u |w'|.
    The bound used is 1.01 times that sum (the second-order terms are below 1e-6 of it)."""
    u = 2.0 ** -24
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 1e-3
    for t in (1, 2, 10, 1000):
        n = 20000
        w = rng.standard_normal(n).astype(np.float32)
        g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 2, n)).astype(np.float32)
        m = (rng.standard_normal(n) * np.abs(g) * rng.uniform(0, 3, n)).astype(np.float32)
        m[::7] = (-(1 - b1) * g[::7] / b1).astype(np.float32)  # near-cancellation in m'
        v = (g.astype(np.float64) ** 2 * rng.uniform(0, 3, n)).astype(np.float32)
        p = Parameter(w.copy())
        p.grad[...] = g
        opt = nn.Adam(lr, beta1=b1, beta2=b2, eps=eps)
        opt._state[id(p)] = {"m": m.copy(), "v": v.copy()}
        opt.iterations = t - 1
        opt.step([p])
        w64, g64, m64, v64 = (x.astype(np.float64) for x in (w, g, m, v))
        m1 = b1 * m64 + (1 - b1) * g64
        v1 = b2 * v64 + (1 - b2) * g64 * g64
        s = lr / (1 - b1**t)
        d = np.sqrt(v1 / (1 - b2**t)) + eps
        upd = s * m1 / d
        w1 = w64 - upd
        a = np.abs(b1 * m64) + np.abs((1 - b1) * g64)
        bound = 1.01 * ((s / d) * 5 * u * a + 10 * u * np.abs(upd) + u * np.abs(w1))
        err = np.abs(p.value.astype(np.float64) - w1)
        assert (err <= bound).all(), (t, float((err / bound).max()))
        st = opt._state[id(p)]
        assert (np.abs(st["m"] - m1) <= 1.01 * 5 * u * a).all()
        assert (np.abs(st["v"] - v1) <= 1.01 * 6 * u * v1).all()


@needs_numba
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e20])
def test_fused_update_refuses_an_overflowing_gradient_and_changes_nothing(rng, bad):
    ps = _params(rng, np.float32)
    opt = nn.AdamW(1e-2)
    for p in ps:
        p.grad[...] = 1.0
    opt.step(ps)
    before = [(p.value.copy(), opt._state[id(p)]["m"].copy(), opt._state[id(p)]["v"].copy()) for p in ps]
    ps[2].grad.flat[5] = bad
    with pytest.raises(nn.DivergenceError, match="gradient of `a parameter`|NaN or infinite|overflows"):
        opt.step(ps)
    for p, (w, m, v) in zip(ps[2:], before[2:]):  # the refused parameter and those after it: untouched
        np.testing.assert_array_equal(p.value, w)
        np.testing.assert_array_equal(opt._state[id(p)]["m"], m)
        np.testing.assert_array_equal(opt._state[id(p)]["v"], v)


def test_subclasses_and_odd_arrays_take_the_numpy_update(rng, monkeypatch):
    calls = []

    class Clipped(nn.Adam):
        def _before_step(self, p, lr):
            calls.append(p)

    ps = _params(rng, np.float32)
    for p in ps:
        p.grad[...] = 0.5
    Clipped(1e-2).step(ps)
    assert len(calls) == len(ps)  # the hook ran: the NumPy path
    q = Parameter(np.ones((4, 6), np.float32)[:, ::2])  # not contiguous
    assert not optim._fusable([q])
    monkeypatch.setattr(kernels, "backend", lambda: "numpy")
    assert not optim._fusable(ps)
    a, b = _params(rng, np.float32), None
    b = [Parameter(p.value.copy()) for p in a]
    for p, r in zip(a, b):
        p.grad[...] = r.grad[...] = 0.25
    nn.Adam(1e-2).step(a)
    _numpy_steps(nn.Adam(1e-2), b)
    for p, r in zip(a, b):
        np.testing.assert_array_equal(p.value, r.value)


def test_main_job_cpu_figures_come_from_this_run(section):
    s = section
    cmed = {k: v["median_s"] for k, v in s["cpu_s"].items()}
    assert s["floor_core_s"] == pytest.approx(s["floor_s"] * s["config"]["workers"])
    assert s["droplab_cpu_over_floor"] == pytest.approx(cmed["droplab"] / s["floor_core_s"])
    for name in s["config"]["torch_threads"]:
        assert s[f"droplab_cpu_vs_{name}"] == pytest.approx(cmed[name] / cmed["droplab"])
