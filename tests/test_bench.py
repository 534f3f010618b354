"""`droplab bench`: the results' structure, same-run ratios, the textbook baseline's correctness,
and the engine's speed paths (fused blocks, BLAS threads during fit). No timing assertions."""

import json

import numpy as np
import pytest

from droplab import kernels, nn
from droplab.cli import main
from droplab.lab._bench import textbook

MEDIAN = "median_s"


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    assert main(["bench", "--tiny", "--quiet", "--sections", "dropout,spiral,blas", "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def test_results_record_the_machine_and_versions(tiny_results):
    r = tiny_results
    assert r["command"] == "bench"
    assert {"droplab", "numpy", "python", "threadpoolctl"} <= set(r["versions"])
    m = r["machine"]
    assert {"cpu", "cores", "git_sha", "kernels_backend", "blas", "thread_env"} <= set(m)
    assert m["kernels_backend"] == kernels.backend()
    assert r["config"]["tiny"] is True and r["config"]["repeats"] == 3


def test_every_figure_has_median_and_spread(tiny_results):
    rows = tiny_results["dropout"]["rows"]
    impls = {r["impl"] for r in rows}
    assert {"droplab", "droplab_out", "textbook", "numpy_f32", "copyto", "np_copy"} <= impls
    assert {r["phase"] for r in rows} == {"forward", "backward", "forward+backward"}
    for r in rows:
        assert r["q1_s"] <= r[MEDIAN] <= r["q3_s"] and r["min_s"] <= r[MEDIAN] <= r["max_s"]
        assert r["repeats"] == 3
        per_byte = {"forward": 8, "backward": 8, "forward+backward": 16}[r["phase"]]
        assert r["effective_gb_per_s"] == pytest.approx(r["elements"] * per_byte / r[MEDIAN] / 1e9)


def test_ratios_come_from_medians_of_the_same_run(tiny_results):
    rows = tiny_results["dropout"]["rows"]
    by = {(r["shape"], r["p"], r["phase"], r["impl"]): r for r in rows}
    checked = 0
    for (shape, p, phase, impl), r in by.items():
        ours = by[(shape, p, phase, "droplab")]
        if impl not in ("droplab", "droplab_out"):
            assert r["droplab_speedup"] == pytest.approx(r[MEDIAN] / ours[MEDIAN])
            checked += 1
        if phase == "forward" and impl in ("droplab", "droplab_out"):
            copy = by[(shape, p, phase, "copyto")]
            assert r["fraction_of_copyto"] == pytest.approx(copy[MEDIAN] / r[MEDIAN])
            assert r["fraction_of_np_copy"] == pytest.approx(by[(shape, p, phase, "np_copy")][MEDIAN] / r[MEDIAN])
    assert checked >= 6
    s = tiny_results["spiral"]
    for name, st in s["per_epoch"].items():
        if name != "droplab":
            assert s["speedup"][f"droplab_vs_{name}"] == pytest.approx(st[MEDIAN] / s["per_epoch"]["droplab"][MEDIAN])
    h = tiny_results["headline"]
    assert h["forward_speedup_vs_textbook"] == by[(h["forward_shape"], h["forward_p"], "forward",
                                                   "textbook")]["droplab_speedup"]
    b = tiny_results["blas"]
    for case in b.values():
        assert case["speedup_1_vs_others"]["2_threads"] == pytest.approx(
            case["times"]["2_threads"][MEDIAN] / case["times"]["1_thread"][MEDIAN])


def test_mask_bytes_per_element(tiny_results):
    for per in tiny_results["dropout"]["mask_bytes_per_element"].values():
        assert per["droplab"] == 0 and per["droplab_out"] == 0
        assert per["textbook"] == 8  # a float64 mask
        assert per["numpy_f32"] == 1  # a boolean mask
        if "torch" in per:
            assert per["torch"] > 0


@pytest.mark.parametrize("argv, match", [(["--sections", "dropout,nope"], "sections"),
                                         (["--sections", ","], "sections"), (["--repeats", "-2"], "repeats")])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, argv, match):
    out = tmp_path / "b"
    assert main(["bench", "--tiny", "--quiet", *argv, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_textbook_network_computes_what_droplab_computes_on_the_same_mask(seed):
    """Same weights, same masks, float64: the textbook loop and droplab's fit agree."""
    from droplab import data

    p, hidden, epochs = 0.25, 16, 3  # p = 0.25 is exact at 16 bits: both scale by 1/(1 - p)
    X, y = data.spiral(40, 3, seed=seed)
    model = nn.Sequential(nn.Dense(2, hidden, dtype=np.float64), nn.ReLU(), nn.Dropout(p),
                          nn.Dense(hidden, 3, dtype=np.float64), seed=seed)
    drop = model.layers[2]
    counter = iter(range(epochs))
    stream = drop.rng

    def masks(shape):  # droplab's mask number 0, 1, 2 ...: what its Dropout draws in fit
        return stream.at(next(counter)).keep_mask(shape, p).astype(np.float64)

    w1, b1, w2, b2 = (q.value.copy() for q in model.parameters())
    book = textbook.SpiralNetwork.from_weights(w1, b1, w2, b2, p=p, lr=0.05, decay=5e-5, mask_source=masks)
    losses = [book.epoch(X.astype(np.float64), y)[0] for _ in range(epochs)]
    hist = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.05, decay=5e-5), epochs=epochs,
                     verbose=False)
    assert drop.counter == epochs
    np.testing.assert_allclose(hist["loss"], losses, rtol=1e-9)
    got = [q.value for q in model.parameters()]
    want = [book.dense1.weights, book.dense1.biases.ravel(), book.dense2.weights, book.dense2.biases.ravel()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_textbook_dropout_layer_is_the_book_s():
    np.random.seed(0)
    layer = textbook.Layer_Dropout(0.1)  # the book's rate is the drop probability
    x = np.ones((200, 50))
    layer.forward(x, training=True)
    assert layer.binary_mask.dtype == np.float64 and layer.binary_mask.shape == x.shape
    assert set(np.unique(layer.output)) <= {0.0, 1 / 0.9}
    layer.backward(np.ones_like(x))
    assert np.array_equal(layer.dinputs, layer.binary_mask)


# --- the engine paths the bench measures ---------------------------------------------------------


def _pair(dtype, p, inverted=True, seed=0, inputs=5):
    def build():
        return nn.Sequential(nn.Dense(inputs, 40, dtype=dtype, l2=1e-3), nn.ReLU(), nn.Dropout(p, inverted=inverted),
                             nn.Dense(40, 24, dtype=dtype), nn.ReLU(), nn.Dense(24, 3, dtype=dtype), seed=seed)
    fused, plain = build(), build()
    plain._steps = lambda: list(plain.layers)  # layer by layer: the reference
    return fused, plain


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 1e-10, 1e-6, 0.3, 1.0])  # 1e-10: threshold 0 (nothing dropped); 1e-6: 4295
@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("inputs", [2, 5])  # 2: the few-inputs product (nn._fused.SMALL_IN)
def test_fused_blocks_equal_layer_by_layer(rng, seed, dtype, p, inverted, inputs):
    fused, plain = _pair(dtype, p, inverted, seed, inputs)
    for n in (7, 300, 2000):  # 2000 x 40 elements: the parallel mask path
        X = rng.standard_normal((n, inputs)).astype(dtype)
        dy = rng.standard_normal((n, 3)).astype(dtype)
        for mode in ("train", "eval"):
            getattr(fused, mode)()
            getattr(plain, mode)()
            ya, yb = fused.forward(X), plain.forward(X)
            fused.zero_grad()
            plain.zero_grad()
            da, db = fused.backward(dy), plain.backward(dy)
            assert np.array_equal(ya, yb) and np.array_equal(da, db)
            if mode == "train":  # the forward is the same computation, bit for bit
                assert np.array_equal(fused.layers[3]._x.view(np.uint8), plain.layers[3]._x.view(np.uint8))
            for a, b in zip(fused.parameters(), plain.parameters()):
                assert np.array_equal(a.grad, b.grad)
            assert fused.layers[2].counter == plain.layers[2].counter
    if kernels.backend() == "numba":
        assert type(fused._ran[0]).__name__ == "Block"


@pytest.mark.parametrize("inputs", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_inputs_dense_sums_in_input_order(rng, dtype, inputs):
    """The few-inputs path is NumPy's own arithmetic in a fixed order: each product rounded,
    then added in input order (no FMA), and the weight gradient summed over rows in order."""
    from droplab.nn import _fused

    for n, m in ((7, 3), (3000, 512)):  # 3000 x 512: the parallel kernel
        x = rng.standard_normal((n, inputs)).astype(dtype)
        w = rng.standard_normal((inputs, m)).astype(dtype)
        b = rng.standard_normal(m).astype(dtype)
        dy = rng.standard_normal((n, m)).astype(dtype)
        want = x[:, 0:1] * w[0]
        for q in range(1, inputs):
            want = want + x[:, q:q + 1] * w[q]
        assert np.array_equal(_fused.small_dense(x, w, b), want + b)
        want_dw = np.stack([(x[:, q:q + 1] * dy).sum(axis=0) for q in range(inputs)])
        assert np.array_equal(_fused.small_weight_grad(x, dy), want_dw)
        assert np.allclose(_fused.small_dense(x, w, b), x @ w + b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                           atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("outputs", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_outputs_dense_gradients_sum_in_a_fixed_order(rng, dtype, outputs):
    from droplab.nn import _fused

    for n, m in ((7, 9), (3000, 512)):
        h = rng.standard_normal((n, m)).astype(dtype)
        w = rng.standard_normal((m, outputs)).astype(dtype)
        dy = rng.standard_normal((n, outputs)).astype(dtype)
        want_dw = np.stack([(h * dy[:, k:k + 1]).sum(axis=0) for k in range(outputs)], axis=1)
        assert np.array_equal(_fused.few_out_weight_grad(h, dy), want_dw)
        want_dx = dy[:, 0:1] * w[:, 0]
        for k in range(1, outputs):
            want_dx = want_dx + dy[:, k:k + 1] * w[:, k]
        assert np.array_equal(_fused.few_out_input_grad(dy, w), want_dx)
        layer = nn.Dense(m, outputs, dtype=dtype)
        layer.forward(h)
        dx = layer.backward(dy)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        assert np.allclose(dx, dy @ layer.weight.value.T, rtol=tol, atol=tol)
        assert np.allclose(layer.weight.grad, h.T @ dy, rtol=tol, atol=tol * n)


def test_fused_fit_step_equals_layer_by_layer(rng, seed):
    """Inside fit the first block computes no input gradient (nor the gradient array at all on
    the few-inputs path); the step's parameters still match the layer-by-layer model bit for bit."""
    for inputs in (2, 5):
        fused, plain = _pair(np.float32, 0.3, True, seed, inputs)
        X = rng.standard_normal((3000, inputs)).astype(np.float32)
        y = np.arange(3000) % 3
        for m in (fused, plain):
            m.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=2, verbose=False)
        for a, b in zip(fused.parameters(), plain.parameters()):
            assert np.array_equal(a.value, b.value)


def test_fused_block_gradients_match_finite_differences(seed):
    from droplab.nn.gradcheck import check_gradients

    model = nn.Sequential(nn.Dense(4, 9, dtype=np.float64), nn.ReLU(), nn.Dropout(0.3),
                          nn.Dense(9, 3, dtype=np.float64), seed=seed)
    X = np.random.default_rng(seed).standard_normal((6, 4))
    report = check_gradients(model, X, seed=seed)
    assert report.ok, report


def test_fused_block_holds_no_mask(seed):
    """After a training forward, the only arrays the model keeps are its input and the hidden
    activation (which the second Dense needs anyway): nothing per element for the mask."""
    model = nn.Sequential(nn.Dense(8, 300), nn.ReLU(), nn.Dropout(0.5), nn.Dense(300, 2), seed=seed)
    x = np.ones((50, 8), np.float32)
    model.forward(x)
    drop = model.layers[2]
    assert drop.counter == 1
    held = {}
    for obj in [*model.modules(), *(model._ran or [])]:
        for name in getattr(type(obj), "__slots__", ()) or ():
            v = getattr(obj, name, None)
            if isinstance(v, np.ndarray):
                held[id(v)] = v
        for v in (vars(obj).values() if hasattr(obj, "__dict__") else ()):
            for a in (v if isinstance(v, tuple) else (v,)):
                if isinstance(a, np.ndarray):
                    held[id(a)] = a
    h = model.layers[3]._x
    assert sum(a.nbytes for a in held.values()) == x.nbytes + h.nbytes
    assert sum(a.nbytes for a in vars(drop).values() if isinstance(a, np.ndarray)) == 0


def test_fit_trains_with_one_blas_thread_unless_the_user_set_one(monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []

    class Spy:
        def on_batch_end(self, step, model):
            seen.append(max((d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"), default=1))

    X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    y = np.arange(20) % 2
    model = nn.Sequential(nn.Dense(3, 4), nn.ReLU(), nn.Dense(4, 2), seed=0)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    # the first fit loads numba's kernels, and numba loads scipy's own OpenBLAS: a new pool, not a
    # changed one; load it before taking the "before" picture
    nn.Sequential(nn.Dense(3, 2), seed=0).fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(), epochs=1,
                                              verbose=False)
    before = [d["num_threads"] for d in threadpool_info()]
    blas_before = max((d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"), default=1)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(), epochs=1, batch_size=10, verbose=False,
              callbacks=[Spy()])
    assert seen == [1, 1]
    assert [d["num_threads"] for d in threadpool_info()] == before  # restored after fit
    seen.clear()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", str(blas_before))  # the user's choice: fit leaves BLAS alone
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(), epochs=1, batch_size=10, verbose=False,
              callbacks=[Spy()])
    assert seen == [blas_before] * 2


_FAULTS = r"""
import resource, sys, numpy as np
from droplab import data, nn
X, y = data.spiral(1000, 3, seed=0)
model = nn.Sequential(nn.Dense(2, 512), nn.ReLU(), nn.Dropout(0.1), nn.Dense(512, 3), seed=0)
fit = lambda k: model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.05), epochs=k, verbose=False)
fit(3)
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fit(10)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 10)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's M_TOP_PAD is Linux-only")
def test_fit_steps_reuse_their_memory_instead_of_page_faulting():
    """With the heap padding, a training step's 6 MB activations come back from glibc's heap
    instead of fresh pages: almost no page faults per epoch once warm (it was ~900)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_TOP_PAD_", "DROPLAB_HEAP_PAD")}
    faults = float(subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True,
                                  check=True).stdout.split()[-1])
    assert faults < 50


def test_heap_padding_leaves_a_users_setting_alone(monkeypatch):
    import ctypes

    from droplab.nn import train

    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: calls.append(a))
    for env in ({"MALLOC_TOP_PAD_": "1000"}, {"DROPLAB_HEAP_PAD": "0"}):
        monkeypatch.setattr(train, "_heap_padded", False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        train._pad_heap()
        for k in env:
            monkeypatch.delenv(k)
    assert calls == []


def test_mc_section_reports_the_gemm_bound_and_the_pytorch_loop(tmp_path):
    """The mc figures of issue 18: the fraction of the GEMM-bound time and the ratio to a loop
    of PyTorch passes, both derived from this run's own measurements."""
    from droplab.lab._bench import load_benchmark

    out = tmp_path / "b"
    assert main(["bench", "--tiny", "--quiet", "--sections", "mc", "--out", str(out)]) == 0
    sec = json.loads((out / "results.json").read_text())["mc"]
    if "skipped" in sec:
        pytest.skip(sec["skipped"])
    r = sec["result"]
    hl, cfg = r["headline"], r["config"]
    mc_bench = load_benchmark("mc_bench")
    # 2 * (40*256 + 256*256 + 256*10) multiply-adds per input and pass
    assert cfg["flops"] == mc_bench.forward_flops((40, 256, 256, 10), cfg["N"], cfg["T"])
    assert cfg["flops"] == 2 * 78336 * cfg["N"] * cfg["T"]
    assert hl["gemm_bound_s"] == pytest.approx(cfg["flops"] / r["gemm"]["flop_per_s"], rel=1e-12)
    assert hl["fraction_of_gemm_bound"] == pytest.approx(hl["gemm_bound_s"] / hl["mc_predict"][MEDIAN], rel=1e-12)
    assert hl["meets_gemm_target"] == (hl["fraction_of_gemm_bound"] >= 0.85)
    try:
        import torch  # noqa: F401
    except ImportError:
        assert hl["torch"] is None and hl["speedup_vs_torch"] is None
    else:
        assert hl["speedup_vs_torch"] == pytest.approx(hl["torch"][MEDIAN] / hl["mc_predict"][MEDIAN], rel=1e-12)
        assert hl["meets_torch_target"] == (hl["speedup_vs_torch"] >= 5.0)
    for k in ("mc_predict", "torch"):
        if hl[k]:
            assert hl[k]["repeats"] == cfg["repeats"] and hl[k]["min_s"] <= hl[k][MEDIAN] <= hl[k]["max_s"]


def test_the_pytorch_mc_baseline_is_the_same_network():
    """The baseline's network has the droplab model's weights: in eval mode both give the same
    probabilities (to float32 rounding of differently ordered sums)."""
    torch = pytest.importorskip("torch")
    from droplab.lab._bench import load_benchmark

    mc_bench = load_benchmark("mc_bench")
    model = mc_bench._model(0.3, 3)
    net = mc_bench._torch_net(torch, model, 0.3).eval()
    X = np.random.default_rng(0).standard_normal((64, 40)).astype(np.float32)
    ours = model.predict(X)
    with torch.no_grad():
        theirs = torch.softmax(net(torch.from_numpy(X)), dim=1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in net) == 2
