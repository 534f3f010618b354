"""Bidirectional RNN and GRU, and every step's output: float64 gradient checks, PyTorch on the
same weights (float64 exactly, float32 to 1e-5), the reverse direction as a forward layer on
the reversed sequence, the MNIST-1D GRU with a head on every step, and model files."""

import numpy as np
import pytest

from droplab import nn
from droplab.nn.gradcheck import check_gradients

F64 = np.float64
CLASSES = {"GRU": nn.GRU, "RNN": nn.RNN}


def randomize(layer, rng):
    """Non-zero biases, so their gradients are exercised away from the zero default."""
    for p in layer.parameters():
        if p.value.ndim == 1:
            p.value[:] = rng.uniform(-0.5, 0.5, p.value.shape)
    return layer


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_gradients_float64(kind, return_sequences, rng):
    layer = randomize(CLASSES[kind](3, 4, bidirectional=True, return_sequences=return_sequences, dtype=F64,
                                    seed=0), rng)
    report = check_gradients(layer, rng.standard_normal((2, 5, 3)))
    assert report.ok, str(report)
    assert len(report.errors) == 1 + len(layer.parameters())


def test_the_papers_gru_with_a_head_on_every_step_passes_the_gradient_check(rng):
    model = nn.Sequential(nn.GRU(1, 3, bidirectional=True, return_sequences=True, dtype=F64), nn.Flatten(),
                          nn.Dense(8 * 6, 4, dtype=F64), seed=1)
    randomize(model, rng)
    assert check_gradients(model, rng.standard_normal((2, 8, 1))).ok


# ------------------------------------------------------------------------------ PyTorch
def _torch_twin(torch, layer):
    """The PyTorch layer with the same weights (``weight_*_l0[_reverse]`` are ours transposed;
    PyTorch's RNN has two biases where ours has one: ours goes into ``bias_ih``)."""
    cls = {"GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[type(layer).__name__]
    t = cls(layer.input_size, layer.hidden_size, batch_first=True, bidirectional=layer.bidirectional)
    t = t.double() if layer.dtype == F64 else t
    with torch.no_grad():
        for sfx in ("", "_reverse") if layer.bidirectional else ("",):
            getattr(t, "weight_ih_l0" + sfx)[:] = torch.tensor(getattr(layer, "weight_ih" + sfx).value.T)
            getattr(t, "weight_hh_l0" + sfx)[:] = torch.tensor(getattr(layer, "weight_hh" + sfx).value.T)
            getattr(t, "bias_ih_l0" + sfx)[:] = torch.tensor(getattr(layer, "bias_ih" + sfx).value)
            hh = getattr(layer, "bias_hh" + sfx, None)
            getattr(t, "bias_hh_l0" + sfx)[:] = torch.tensor(hh.value) if hh is not None else 0
    return t


def _torch_grads(t, layer):
    """PyTorch's gradients in our parameters' order and layout."""
    out = []
    for p in layer.parameters():
        name = p.name.replace("_reverse", "")
        g = getattr(t, name + "_l0" + ("_reverse" if p.name.endswith("_reverse") else "")).grad.numpy()
        out.append(g.T if name.startswith("weight") else g)
    return out


def _run_both(torch, layer, x, rng):
    t = _torch_twin(torch, layer)
    xt = torch.tensor(x, requires_grad=True)
    seq, h_n = t(xt)
    # our final output is h_n with the directions side by side (not seq[:, -1])
    yt = seq if layer.return_sequences else torch.cat(list(h_n), dim=1)
    dy = rng.standard_normal(tuple(yt.shape)).astype(x.dtype)
    yt.backward(torch.tensor(dy))
    y = layer.forward(x)
    dx = layer.backward(dy)
    return (y, dx, [p.grad for p in layer.parameters()]), (yt.detach().numpy(), xt.grad.numpy(), _torch_grads(t, layer))


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_matches_torch_in_float64(kind, return_sequences, rng):
    torch = pytest.importorskip("torch")
    layer = randomize(CLASSES[kind](3, 4, bidirectional=True, return_sequences=return_sequences, dtype=F64,
                                    seed=0), rng)
    ours, theirs = _run_both(torch, layer, rng.standard_normal((3, 6, 3)), rng)
    for a, b in zip([ours[0], ours[1], *ours[2]], [theirs[0], theirs[1], *theirs[2]]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# Tolerance in float32. Each step's pre-activations are (F + H)-term dot products, each rounded
# with error about sqrt(K)*u (u = 2**-24), passed on through gates whose derivatives are at most
# 1 (sigmoid, tanh, the convex mix of z) and an orthogonal W_hh, so over T steps the outputs
# differ by about sqrt(T*K)*u = sqrt(40*7)*6e-8 = 1e-6. A weight gradient sums N*T = 640 such
# terms: sqrt(640)*6e-8 = 1.5e-6 relative to its scale. 1e-5 relative to each array's largest
# magnitude leaves a margin of ~6x; over 30 seeds the worst seen was 1.5e-6.
def assert_close32(ours, theirs):
    theirs = np.asarray(theirs, F64)
    diff = np.abs(np.asarray(ours, F64) - theirs).max(initial=0.0)
    assert diff <= 1e-5 * max(1.0, np.abs(theirs).max(initial=0.0)), diff


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_matches_torch_in_float32_on_the_papers_shape(kind, return_sequences, rng):
    torch = pytest.importorskip("torch")
    layer = randomize(CLASSES[kind](1, 6, bidirectional=True, return_sequences=return_sequences,
                                    seed=int(rng.integers(2**31))), rng)
    x = rng.standard_normal((16, 40, 1)).astype(np.float32)
    ours, theirs = _run_both(torch, layer, x, rng)
    assert ours[0].dtype == ours[1].dtype == np.float32
    assert ours[0].shape == ((16, 40, 12) if return_sequences else (16, 12))
    for a, b in zip([ours[0], ours[1], *ours[2]], [theirs[0], theirs[1], *theirs[2]]):
        assert_close32(a, b)


# ------------------------------------------------------------------------------ invariants
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_the_reverse_direction_is_a_forward_layer_on_the_reversed_sequence(kind, rng):
    cls = CLASSES[kind]
    bi = randomize(cls(2, 3, bidirectional=True, return_sequences=True, dtype=F64, seed=0), rng)
    fwd, rev = (cls(2, 3, return_sequences=True, dtype=F64, seed=1) for _ in range(2))
    for one, suffix in ((fwd, ""), (rev, "_reverse")):
        for p in one.parameters():
            p.value[...] = getattr(bi, p.name + suffix).value
    x = rng.standard_normal((4, 7, 2))
    y = bi.forward(x)
    np.testing.assert_allclose(y[:, :, :3], fwd.forward(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(y[:, :, 3:], rev.forward(x[:, ::-1])[:, ::-1], rtol=1e-13, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    dx = bi.backward(dy)
    np.testing.assert_allclose(dx, fwd.backward(dy[:, :, :3]) + rev.backward(dy[:, ::-1, 3:])[:, ::-1],
                               rtol=1e-12, atol=1e-14)
    for one, suffix in ((fwd, ""), (rev, "_reverse")):
        for p in one.parameters():
            np.testing.assert_allclose(getattr(bi, p.name + suffix).grad, p.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_the_last_state_is_each_directions_final_state(kind, rng):
    seq = CLASSES[kind](2, 3, bidirectional=True, return_sequences=True, seed=0)
    last = CLASSES[kind](2, 3, bidirectional=True, seed=0)
    x = rng.standard_normal((4, 6, 2)).astype(np.float32)
    y = seq.forward(x)
    np.testing.assert_array_equal(last.forward(x), np.concatenate([y[:, -1, :3], y[:, 0, 3:]], axis=1))


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_parameters_layout_and_unchanged_forward_direction(kind, seed):
    cls = CLASSES[kind]
    one, two = cls(3, 4, seed=seed), cls(3, 4, bidirectional=True, seed=seed)
    names = [p.name for p in one.parameters()]
    assert [p.name for p in two.parameters()] == names + [n + "_reverse" for n in names]
    for p, q in zip(one.parameters(), two.parameters()):  # the forward direction draws first: same weights
        np.testing.assert_array_equal(p.value, q.value)
    assert not np.array_equal(two.weight_hh.value, two.weight_hh_reverse.value)
    assert one.config()["bidirectional"] is False and two.config()["bidirectional"] is True


def test_a_unidirectional_gru_returns_every_steps_state(rng):
    gru = nn.GRU(2, 3, return_sequences=True, seed=0)
    last = nn.GRU(2, 3, seed=0)
    x = rng.standard_normal((4, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(gru.forward(x)[:, -1], last.forward(x))


def test_the_papers_gru_shapes_and_training(rng):
    model = nn.Sequential(nn.GRU(1, 6, bidirectional=True, return_sequences=True), nn.Flatten(),
                          nn.Dense(40 * 12, 10), seed=0)
    x = rng.standard_normal((30, 40, 1)).astype(np.float32)
    assert model.forward(x).shape == (30, 10)
    y = (x[:, :20, 0].mean(axis=1) > 0).astype(np.int64)
    hist = model.fit(x, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-2), epochs=15, batch_size=10,
                     verbose=False)
    assert hist["loss"][-1] < hist["loss"][0]


# ------------------------------------------------------------------------------ files, errors
@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_model_files_round_trip(kind, return_sequences, tmp_path, rng):
    layer = randomize(CLASSES[kind](2, 3, bidirectional=True, return_sequences=return_sequences, seed=0), rng)
    layer.save(tmp_path / "m.npz")
    twin = nn.load(tmp_path / "m.npz")
    assert repr(twin) == repr(layer) and twin.config() == layer.config()
    for p, q in zip(layer.parameters(), twin.parameters()):
        assert p.name == q.name and np.array_equal(p.value, q.value)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(twin.forward(x), layer.forward(x))


def test_integer_input_is_computed_in_float32():
    x = np.arange(24).reshape(2, 4, 3) % 5 - 2
    gru = nn.GRU(3, 2, bidirectional=True, seed=0)
    y = gru.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, nn.GRU(3, 2, bidirectional=True, seed=0).forward(x.astype(np.float32)))


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_a_non_bool_bidirectional_is_a_type_error(kind):
    with pytest.raises(TypeError, match=rf"{kind}: `bidirectional` must be True or False; got bidirectional=2"):
        CLASSES[kind](2, 3, bidirectional=2)


def test_a_forged_file_is_refused_before_any_layer_is_built(tmp_path):
    from test_load_attack import _file, _layer, _spec

    (tmp_path / "flag.npz").write_bytes(_file(_spec(_layer("GRU", input_size=1, hidden_size=2, bidirectional=1))))
    with pytest.raises(ValueError, match=r"`bidirectional` must be true or false; got bidirectional=1"):
        nn.load(tmp_path / "flag.npz")
    # a bidirectional GRU holding only one direction's arrays: the size rule counts both
    arrays = {"param/0": np.zeros((1, 6), np.float32), "param/1": np.zeros((2, 6), np.float32),
              "param/2": np.zeros(6, np.float32), "param/3": np.zeros(6, np.float32)}
    spec = _spec(_layer("GRU", input_size=1, hidden_size=2, bidirectional=True), arrays)
    (tmp_path / "half.npz").write_bytes(_file(spec, arrays))
    with pytest.raises(ValueError, match=r"makes parameter 4 with shape \(1, 6\); the file holds only 4 parameters"):
        nn.load(tmp_path / "half.npz")
    for k in range(4, 8):  # with the reverse direction's four arrays it loads
        arrays[f"param/{k}"] = arrays[f"param/{k - 4}"]
    (tmp_path / "whole.npz").write_bytes(_file(_spec(_layer("GRU", input_size=1, hidden_size=2, bidirectional=True),
                                                     arrays), arrays))
    gru = nn.load(tmp_path / "whole.npz")
    assert gru.bidirectional and len(gru.parameters()) == 8
