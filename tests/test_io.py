"""Model files: round trips (weights, buffers, masks, optimizer, loss), atomic writes, and
files that must be refused (pickles never unpickled, newer formats, forged specs)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from droplab import data, nn
from droplab.nn import io


def _model(seed=0):
    return nn.Sequential(nn.Dense(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                         nn.Residual(nn.Sequential(nn.Dense(8, 8), nn.Tanh(), nn.GaussianDropout(0.2))),
                         nn.Dense(8, 3), seed=seed)


def _train(model, rng, opt=None, epochs=2):
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    opt = opt or nn.Adam(0.01)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=epochs, batch_size=16, verbose=False)
    return X, y, opt


def test_round_trip_is_exact(tmp_path, rng):
    model = _model()
    X, y, opt = _train(model, rng)
    path = tmp_path / "sub" / "model.npz"
    model.save(path, optimizer=opt)
    twin = nn.load(path)
    assert repr(twin) == repr(model)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert p.value.dtype == q.value.dtype and np.array_equal(p.value, q.value)
    bn, bn2 = model[1], twin[1]
    assert np.array_equal(bn.running_mean, bn2.running_mean) and np.array_equal(bn.running_var, bn2.running_var)
    assert bn2.num_batches_tracked == bn.num_batches_tracked > 0
    assert twin[3].counter == model[3].counter > 0 and twin[3].rng.state() == model[3].rng.state()
    assert np.array_equal(twin.predict(X), model.predict(X))  # the loss's softmax came back too
    np.testing.assert_allclose(twin.predict(X).sum(axis=1), 1, rtol=1e-5)
    assert np.array_equal(twin.train().forward(X), model.train().forward(X))  # the next masks
    # training on from the files continues exactly as the original would
    opt2 = nn.load_optimizer(path, twin)
    assert type(opt2) is nn.Adam and opt2.iterations == opt.iterations == 8
    _train(model, np.random.default_rng(1), opt)
    _train(twin, np.random.default_rng(1), opt2)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(p.value, q.value)


def test_every_layer_type_round_trips(tmp_path):
    from test_properties import LAYERS

    for name, case in sorted(LAYERS.items()):
        shape = {2: (3, 4), 3: (3, 4, 5), 4: (3, 2, 4, 4), 5: (3, 2, 2, 4, 4)}[case.rank]
        layer = case.build(min(max(0.3, case.p_range[0]), case.p_range[1]), np.dtype(np.float64), shape)
        x = np.random.default_rng(0).standard_normal(shape)
        layer.forward(x)
        layer.save(tmp_path / f"{name}.npz")
        twin = nn.load(tmp_path / f"{name}.npz")
        assert type(twin) is type(layer) and twin.config() == layer.config(), name
        for m in (layer, twin):
            m.train()
        assert np.array_equal(twin.forward(x), layer.forward(x)), name
        assert np.array_equal(twin.eval().forward(x), layer.eval().forward(x)), name


def test_model_mode_and_shuffling_are_kept(tmp_path, rng):
    model = _model()
    X, y, _ = _train(model, rng)
    model.eval()
    model.save(tmp_path / "m.npz")
    twin = nn.load(tmp_path / "m.npz")
    assert not any(m.training for m in twin.modules())
    # fit without seed= shuffles from the model's own generator: the twin draws the same order
    a, _, _ = _train(model.train(), np.random.default_rng(5))
    b, _, _ = _train(twin.train(), np.random.default_rng(5))
    for p, q in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(p.value, q.value)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def broken(f, **arrays):
        f.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        _model(seed=1).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def test_save_refuses_what_a_file_cannot_hold(tmp_path):
    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"save: `model` must be built from droplab.nn layers only; got model='a Mine module'"):
        nn.Sequential(nn.Dense(2, 2), Mine()).save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"save: `model` must be a droplab Module; got model='int'"):
        io.save(3, tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"save: `optimizer` must be a droplab optimizer or None"):
        _model().save(tmp_path / "m.npz", optimizer="adam")
    with pytest.raises(TypeError, match=r"save: `path` must be a file path"):
        _model().save(None)
    with pytest.raises(ValueError, match=r"holds state for parameters that are not this model's"):
        other, opt = _model(), nn.Adam()
        _train(other, np.random.default_rng(0), opt, epochs=1)
        _model().save(tmp_path / "m.npz", optimizer=opt)
    assert not (tmp_path / "m.npz").exists()


def _rewrite(path, out, edit_spec=None, edit_arrays=None):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    spec = json.loads(arrays.pop("__spec__").tobytes())
    if edit_spec:
        edit_spec(spec)
    if edit_arrays:
        edit_arrays(arrays)
    np.savez(out, __spec__=np.frombuffer(json.dumps(spec).encode(), np.uint8), **arrays)
    return out


def test_newer_format_is_refused_with_a_clear_message(tmp_path):
    _model().save(tmp_path / "m.npz")

    def newer(spec):
        spec["format_version"] = io.FORMAT_VERSION + 1
        spec["droplab"] = "9.0"

    bad = _rewrite(tmp_path / "m.npz", tmp_path / "new.npz", newer)
    with pytest.raises(ValueError, match=r"written in model-file format 2 \(droplab 9.0\), newer than this droplab"
                                         r" .* reads \(format 1\); upgrade droplab to load it."):
        nn.load(bad)


class Boom:
    """Unpickling this makes a folder: the test checks that it never exists."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("where", ["spec", "param", "extra"])
def test_pickled_objects_are_never_unpickled(tmp_path, where):
    marker = tmp_path / "UNPICKLED"
    _model().save(tmp_path / "m.npz")
    payload = np.array([Boom(marker)], dtype=object)

    def inject(arrays):
        key = {"spec": "__spec__", "param": "param/0", "extra": "sneaky"}[where]
        arrays[key] = payload

    path = tmp_path / "evil.npz"
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    inject(arrays)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"dtype object.*pickled objects are never loaded"):
        nn.load(path)
    np.savez(tmp_path / "data.npz", X=payload, y=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"pickled"):
        data.load(str(tmp_path / "data.npz"))
    assert not marker.exists()


def test_buffers_protocol_reaches_layers_defined_later(tmp_path, monkeypatch):
    class Tally(nn.Module):
        """A layer with a buffer (``_buffers``) and a counted attribute."""

        def __init__(self, width):
            super().__init__()
            self._config = {"width": width}
            self.total = np.zeros(width)
            self.seen = 0

        def _buffers(self):
            return {"total": self.total, "seen": self.seen}

        def forward(self, x):
            self.total += x.sum(axis=0)
            self.seen += len(x)
            return x

    monkeypatch.setattr(nn, "Tally", Tally, raising=False)
    monkeypatch.setattr(nn, "__all__", [*nn.__all__, "Tally"])
    model = nn.Sequential(Tally(3))
    model.forward(np.ones((4, 3)))
    model.save(tmp_path / "t.npz")
    twin = nn.load(tmp_path / "t.npz")
    assert np.array_equal(twin[0].total, [4, 4, 4]) and twin[0].seen == 4 and type(twin[0].seen) is int


@pytest.mark.parametrize("args,exc,message", [
    (dict(X=np.array([[np.nan, 1.0]]), y=[0]), ValueError, r"fit: `X` must be finite \(no NaN or inf\); got X='array with 1 non-finite values'"),
    (dict(X=np.ones((2, 2)), y=[0.5, np.inf]), ValueError, r"fit: `y` must be finite"),
    (dict(X=np.ones((3, 2)), y=[0, 1]), ValueError, r"fit: `y` must be 3 targets \(one per row of X\)"),
    (dict(X=np.ones((0, 2)), y=[]), ValueError, r"fit: `X` must be a non-empty array"),
    (dict(X=np.array([["a", "b"]]), y=[0]), TypeError, r"fit: `X` must be a numeric array; got X='array of dtype <U1'"),
    (dict(X=np.ones((2, 2)), y=[0, 5]), ValueError, r"fit: `y` must be labels in \[0, 2\); got y='array containing 5'"),
    (dict(X=np.ones((2, 2)), y=[0, -1]), ValueError, r"fit: `y` must be labels in \[0, 2\)"),
    (dict(X=np.ones((2, 3)), y=[0, 1]), ValueError, r"Dense: input must have shape \(N, 2\); got shape \(2, 3\)."),
])
def test_bad_training_data_gives_one_clear_error(args, exc, message):
    model = nn.Sequential(nn.Dense(2, 2), seed=0)
    with pytest.raises(exc, match=message):
        model.fit(args["X"], np.asarray(args["y"]), loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=1,
                  verbose=False)
    assert np.isfinite(model[0].weight.value).all()


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ValueError, match=r"data.load: `name` must be one of .*; got name='spirals'. Did you mean 'spiral'\?"):
        data.load("spirals")
    from droplab.lab import models

    with pytest.raises(ValueError, match=r"mlp: `variant` must be one of .*Did you mean 'dropout'\?"):
        models.mlp(2, [4], 2, variant="drpout")
