"""nn.mc_predict: only dropout layers sample, modes and BatchNorm statistics untouched, exact
p = 0 limit, the statistics agree with droplab.metrics, masks independent across the T copies."""

import numpy as np
import pytest

from droplab import kernels, metrics, nn
from droplab.nn import mc as mc_module

HAS_BN = hasattr(nn, "BatchNorm1d")
needs_bn = pytest.mark.skipif(not HAS_BN, reason="nn.BatchNorm1d is not there yet (nn/norm.py)")


def _mlp(p, seed, *, inputs=5, hidden=16, classes=3, loss=True):
    model = nn.Sequential(nn.Dense(inputs, hidden), nn.ReLU(), nn.Dropout(p), nn.Dense(hidden, hidden), nn.ReLU(),
                          nn.Dropout(p), nn.Dense(hidden, classes), seed=seed)
    if loss:
        model._loss = nn.SoftmaxCrossEntropy()
    return model


def _bn_model(p, seed):
    model = nn.Sequential(nn.Dense(4, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(p), nn.Dense(12, 12),
                          nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(p), nn.Dense(12, 3), seed=seed)
    return model


def _trained_bn(p, seed, rng):
    model = _bn_model(p, seed)
    X = rng.standard_normal((64, 4)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 3, 64)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-2), epochs=3, batch_size=16, verbose=False)
    return model, X


def _bn_state(model):
    return [(bytes(np.ascontiguousarray(m.running_mean).data), bytes(np.ascontiguousarray(m.running_var).data),
             getattr(m, "num_batches_tracked", None))
            for m in model.modules() if type(m).__name__.startswith("BatchNorm")]


# --- BatchNorm and modes ----------------------------------------------------------------------


@needs_bn
@pytest.mark.parametrize("start_mode", ["train", "eval", "mixed"])
def test_batchnorm_statistics_bit_identical_and_modes_restored(seed, rng, start_mode):
    model, X = _trained_bn(0.3, seed, rng)
    if start_mode == "eval":
        model.eval()
    elif start_mode == "mixed":
        model.eval()
        model[3].training = True  # an arbitrary mixture must come back as it was
        model[1].training = True
    before_modes = [m.training for m in model.modules()]
    before = _bn_state(model)
    assert before and all(mean != bytes(np.zeros(12, np.float32).data) for mean, _, _ in before)
    res = nn.mc_predict(model, X, samples=20, seed=seed)
    assert _bn_state(model) == before
    assert [m.training for m in model.modules()] == before_modes
    assert res.samples.shape == (20, 64, 3)
    # with BN in eval the passes still differ: the dropout layers did sample
    assert not np.array_equal(res.samples[0], res.samples[1])


@needs_bn
def test_batchnorm_model_at_p0_equals_predict_exactly(seed, rng):
    model, X = _trained_bn(0.0, seed, rng)
    before = _bn_state(model)
    res = nn.mc_predict(model, X, samples=9, seed=seed)
    np.testing.assert_array_equal(res.mean, model.predict(X).astype(np.float64))
    assert np.all(res.mutual_information == 0) and np.all(res.std == 0)
    assert _bn_state(model) == before


def test_never_calls_model_train(seed, rng, monkeypatch):
    model = _mlp(0.4, seed)
    model.eval()

    def forbidden(*a, **k):
        raise AssertionError("mc_predict called train()/eval()")

    for m in model.modules():
        monkeypatch.setattr(m, "train", forbidden)
        monkeypatch.setattr(m, "eval", forbidden)
    res = nn.mc_predict(model, rng.standard_normal((6, 5)), samples=4, seed=seed)
    assert res.mean.shape == (6, 3)
    assert not any(m.training for m in model.modules())


class _Boom(nn.Module):
    """Raises in forward when training (so only an MC pass trips it)."""

    is_dropout = True

    def forward(self, x):
        if self.training:
            raise RuntimeError("boom")
        return x


def test_modes_and_mask_streams_restored_on_error(seed, rng):
    model = nn.Sequential(nn.Dense(3, 8), nn.Dropout(0.5), _Boom(), nn.Dense(8, 2), seed=seed)
    model.eval()
    model[1].training = True
    modes = [m.training for m in model.modules()]
    state = model[1].rng.state()
    with pytest.raises(RuntimeError, match="boom"):
        nn.mc_predict(model, rng.standard_normal((4, 3)), samples=3, seed=seed)
    assert [m.training for m in model.modules()] == modes
    assert model[1].rng.state() == state


# --- exact limits and identities -------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 3])
def test_p0_mc_mean_equals_deterministic_prediction_exactly(seed, rng, batch_size):
    model = _mlp(0.0, seed)
    X = rng.standard_normal((50, 5)).astype(np.float32)
    res = nn.mc_predict(model, X, samples=13, seed=seed, batch_size=batch_size)
    np.testing.assert_array_equal(res.mean, model.predict(X).astype(np.float64))
    assert np.all(res.mutual_information == 0.0)
    assert np.all(res.std == 0.0) and np.all(res.variation_ratio == 0.0)
    np.testing.assert_array_equal(res.entropy, metrics.predictive_entropy(model.predict(X).astype(np.float64)))
    np.testing.assert_array_equal(res.entropy, res.expected_entropy)


def test_p0_exact_also_when_the_passes_are_split(seed, rng, monkeypatch):
    model = _mlp(0.0, seed)
    X = rng.standard_normal((6, 5)).astype(np.float32)
    monkeypatch.setattr(mc_module, "MEMORY_BUDGET", 16 * 4 * 7)  # 7 rows of 16 floats: T split in chunks
    res = nn.mc_predict(model, X, samples=20, seed=seed)
    np.testing.assert_array_equal(res.mean, model.predict(X).astype(np.float64))
    assert np.all(res.mutual_information == 0.0) and np.all(res.std == 0.0)


@pytest.mark.parametrize("budget", [None, 16 * 4 * 7])
def test_statistics_agree_with_metrics_on_the_samples(seed, rng, monkeypatch, budget):
    if budget is not None:  # the streaming (Chan) combination over chunks of passes
        monkeypatch.setattr(mc_module, "MEMORY_BUDGET", budget)
    model = _mlp(0.5, seed)
    X = rng.standard_normal((40, 5)).astype(np.float32) * 2
    res = nn.mc_predict(model, X, samples=30, seed=seed)
    s = res.samples
    assert s.shape == (30, 40, 3) and s.dtype == np.float64
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.mean, s.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.std, s.std(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.variance, s.var(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.entropy, metrics.predictive_entropy(s), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.expected_entropy, metrics.expected_entropy(s), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.mutual_information, metrics.mutual_information(s), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(res.variation_ratio, metrics.variation_ratio(s))
    np.testing.assert_array_equal(res.prediction, res.mean.argmax(axis=1))


def test_mi_between_zero_and_entropy_always(seed):
    for i in range(10):
        r = np.random.default_rng([seed, i])
        p = float(r.uniform(0.05, 0.9))
        model = _mlp(p, int(r.integers(2**31)), classes=int(r.integers(2, 6)))
        X = (r.standard_normal((30, 5)) * r.uniform(0.1, 10)).astype(np.float32)
        res = nn.mc_predict(model, X, samples=int(r.integers(1, 25)), seed=i)
        assert np.all(res.mutual_information >= 0.0)
        assert np.all(res.mutual_information <= res.entropy)
        # each pass is a float32 softmax: its K probabilities sum to 1 within K (K + 4) u
        # (u = 2**-24: exp, sum and divide roundings), and a vector summing to 1 + e has
        # entropy at most log K + |e| (1 + log K) to first order; float64 statistics add 1e-12
        k = res.mean.shape[1]
        slack = k * (k + 4) * 2.0**-24 * (1 + np.log(k)) + 1e-12
        assert np.all(res.entropy <= np.log(k) + slack)


def test_single_pass_has_no_epistemic_part(seed, rng):
    res = nn.mc_predict(_mlp(0.5, seed), rng.standard_normal((8, 5)), samples=1, seed=seed)
    assert np.all(res.mutual_information == 0) and np.all(res.std == 0) and np.all(res.variation_ratio == 0)


def test_hand_computed_two_pass_values():
    # one input, dropout on the logits [a, 0] of a 2-class softmax: each pass keeps (2a, 0) or drops (0, 0)
    a = np.log(3.0)  # kept logits 2a -> probabilities (9/10, 1/10); dropped -> (1/2, 1/2)
    model = nn.Sequential(nn.Dropout(0.5), seed=0)
    model._loss = nn.SoftmaxCrossEntropy()
    x = np.array([[a, 0.0]])
    res = nn.mc_predict(model, x, samples=200, seed=1)
    kept = res.samples[:, 0, 1] < 0.4  # the first logit kept: (0.9, 0.1); dropped: (0.5, 0.5)
    q = kept.mean()
    mean = q * np.array([0.9, 0.1]) + (1 - q) * np.array([0.5, 0.5])
    h = lambda v: -np.sum(v * np.log(v))  # noqa: E731
    np.testing.assert_allclose(res.mean[0], mean, rtol=1e-6)
    np.testing.assert_allclose(res.entropy[0], h(mean), rtol=1e-6)
    np.testing.assert_allclose(res.mutual_information[0], h(mean) - (q * h(np.array([0.9, 0.1])) + (1 - q) * np.log(2)),
                               rtol=1e-5)
    assert 0 < q < 1
    assert res.variation_ratio[0] == 0.0  # (0.5, 0.5) votes for class 0 too: argmax takes the first on ties


# --- the T copies are independent passes -------------------------------------------------------------


def test_stacked_copies_draw_independent_masks(seed):
    p, T, n, f = 0.3, 40, 50, 20
    model = nn.Sequential(nn.Dropout(p), seed=seed)  # regression: raw outputs are x * m / (1 - p)
    res = nn.mc_predict(model, np.ones((n, f), np.float32), samples=T, seed=seed)
    assert res.stacked and res.kind == "regression"
    dropped = res.samples == 0
    scale = np.float64(np.float32(kernels.keep_scale(p)))  # 1 / (1 - p) rounded once to float32
    assert np.all((res.samples == 0) | (res.samples == scale))
    # rate: n = T*n*f = 40000 independent draws, z = 5, false-failure probability about 6e-7
    draws = T * n * f
    assert abs(dropped.mean() - p) <= 5 * np.sqrt(p * (1 - p) / draws)
    # independence of consecutive copies: P(both dropped) = p^2, over (T-1)*n*f pairs of
    # independent draws; each pair is a Bernoulli(p^2), z = 5 (pairs overlap, so use n/2)
    both = (dropped[1:] & dropped[:-1]).mean()
    pairs = (T - 1) * n * f / 2
    assert abs(both - p * p) <= 5 * np.sqrt(p * p * (1 - p * p) / pairs)


def test_same_seed_same_result_and_model_stream_untouched(seed, rng):
    X = rng.standard_normal((20, 5)).astype(np.float32)
    model, twin = _mlp(0.5, seed), _mlp(0.5, seed)
    a = nn.mc_predict(model, X, samples=10, seed=7)
    b = nn.mc_predict(model, X, samples=10, seed=7)
    c = nn.mc_predict(model, X, samples=10, seed=8)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    # the model's own mask stream is where it was: its next training forward matches a twin's
    assert [m.counter for m in model.modules() if m.is_dropout] == [0, 0]
    np.testing.assert_array_equal(model.forward(X), twin.forward(X))


def test_seed_none_uses_and_advances_the_models_stream(seed, rng):
    X = rng.standard_normal((20, 5)).astype(np.float32)
    model, twin = _mlp(0.5, seed), _mlp(0.5, seed)
    a, b = nn.mc_predict(model, X, samples=6), nn.mc_predict(twin, X, samples=6)
    np.testing.assert_array_equal(a.samples, b.samples)  # reproducible from Sequential(seed=...)
    assert all(m.counter > 0 for m in model.modules() if m.is_dropout)
    assert not np.array_equal(nn.mc_predict(model, X, samples=6).samples, a.samples)


def test_keep_samples_false_gives_the_same_statistics(seed, rng):
    model = _mlp(0.4, seed)
    X = rng.standard_normal((25, 5)).astype(np.float32)
    a = nn.mc_predict(model, X, samples=12, seed=3)
    b = nn.mc_predict(model, X, samples=12, seed=3, keep_samples=False)
    assert b.samples is None
    for name in ("mean", "std", "entropy", "mutual_information", "variation_ratio", "variance"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_batch_size_chunks_cover_every_input(seed, rng):
    model = _mlp(0.0, seed)
    X = rng.standard_normal((23, 5)).astype(np.float32)
    a = nn.mc_predict(model, X, samples=4, batch_size=5, seed=1)
    assert a.samples.shape == (4, 23, 3)
    np.testing.assert_array_equal(a.mean, model.predict(X).astype(np.float64))


def test_layer_sharing_noise_across_the_batch_runs_pass_by_pass(seed, rng):
    model = nn.Sequential(nn.Dense(5, 8), nn.ReLU(), nn.DropConnect(8, 8, 0.5) if hasattr(nn, "DropConnect")
                          else nn.Dropout(0.5, axes=0), nn.Dense(8, 3), seed=seed)
    model._loss = nn.SoftmaxCrossEntropy()
    weights = [p.value.copy() for p in model.parameters()]
    res = nn.mc_predict(model, rng.standard_normal((10, 5)).astype(np.float32), samples=8, seed=seed)
    assert not res.stacked
    assert not np.array_equal(res.samples[0], res.samples[1])
    assert np.all((0 <= res.mutual_information) & (res.mutual_information <= res.entropy))
    for p, w in zip(model.parameters(), weights):  # reseeding the masks never re-initialises weights
        np.testing.assert_array_equal(p.value, w)


def test_axes_zero_dropout_is_not_stacked_and_still_varies(seed, rng):
    model = nn.Sequential(nn.Dense(5, 8), nn.Dropout(0.5, axes=0), nn.Dense(8, 2), seed=seed)
    res = nn.mc_predict(model, rng.standard_normal((6, 5)).astype(np.float32), samples=30, seed=seed)
    assert not res.stacked
    # one mask shared by the rows of a pass: within a pass, zeroed features are the same for every row
    assert res.std.max() > 0


# --- regression and binary outputs -------------------------------------------------------------


def test_regression_variance_adds_inverse_tau(seed, rng):
    model = nn.Sequential(nn.Dense(3, 16), nn.ReLU(), nn.Dropout(0.2), nn.Dense(16, 2), seed=seed)
    model._loss = nn.MSELoss()
    X = rng.standard_normal((7, 3)).astype(np.float32)
    res = nn.mc_predict(model, X, samples=15, seed=seed, tau=4.0)
    assert res.kind == "regression" and res.entropy is None and res.mutual_information is None
    np.testing.assert_allclose(res.variance, res.samples.var(axis=0) + 0.25, rtol=1e-9)
    np.testing.assert_array_equal(res.prediction, res.mean)
    plain = nn.mc_predict(model, X, samples=15, seed=seed)
    np.testing.assert_allclose(res.variance - plain.variance, 0.25, rtol=1e-12)


def test_sigmoid_output_becomes_two_classes(seed, rng):
    model = nn.Sequential(nn.Dense(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Dense(8, 1), seed=seed)
    model._loss = nn.BinaryCrossEntropy()
    res = nn.mc_predict(model, rng.standard_normal((9, 3)).astype(np.float32), samples=5, seed=seed)
    assert res.kind == "classification" and res.samples.shape == (5, 9, 2)
    np.testing.assert_allclose(res.samples.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(res.entropy <= np.log(2) + 1e-12)


def test_loss_argument_overrides_the_models(seed, rng):
    model = _mlp(0.3, seed, loss=False)
    X = rng.standard_normal((4, 5)).astype(np.float32)
    assert nn.mc_predict(model, X, samples=3, seed=0).kind == "regression"
    res = nn.mc_predict(model, X, samples=3, seed=0, loss=nn.SoftmaxCrossEntropy())
    assert res.kind == "classification"
    np.testing.assert_allclose(res.mean.sum(axis=1), 1.0, atol=1e-6)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,exc,message", [
    ({"samples": 0}, ValueError, r"mc_predict: `samples` must be a positive integer; got samples=0."),
    ({"samples": 2.5}, TypeError, r"mc_predict: `samples` must be a positive integer; got samples=2.5."),
    ({"batch_size": 0}, ValueError, r"mc_predict: `batch_size` must be a positive integer; got batch_size=0."),
    ({"tau": 0.0}, ValueError, r"mc_predict: `tau` must be a finite number > 0; got tau=0.0."),
    ({"tau": "1"}, TypeError, r"mc_predict: `tau` must be a real number"),
    ({"seed": -1}, ValueError, r"mc_predict: `seed` must be a non-negative integer; got seed=-1."),
    ({"seed": 1.5}, TypeError, r"mc_predict: `seed` must be an int, a numpy Generator or None"),
    ({"loss": "softmax"}, TypeError, r"mc_predict: `loss` must be a droplab loss"),
])
def test_bad_arguments_raise_one_line(seed, kwargs, exc, message):
    with pytest.raises(exc, match=message.replace("(", r"\(").replace(")", r"\)")):
        nn.mc_predict(_mlp(0.3, seed), np.ones((2, 5), np.float32), **kwargs)


def test_bad_model_and_inputs_raise(seed):
    with pytest.raises(TypeError, match=r"mc_predict: `model` must be a droplab Module; got model='list'"):
        nn.mc_predict([], np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"`model` must be a network with at least one dropout-family layer"):
        nn.mc_predict(nn.Sequential(nn.Dense(5, 2), seed=seed), np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"mc_predict: `X` must be finite"):
        nn.mc_predict(_mlp(0.3, seed), np.full((2, 5), np.nan))
    with pytest.raises(TypeError, match=r"mc_predict: `X` must be a numeric array"):
        nn.mc_predict(_mlp(0.3, seed), np.array([["a"] * 5]))


# --- resource budgets (issue: a small call must not take the machine) -------------------------


def test_samples_above_the_maximum_are_refused_before_any_work(seed, rng):
    model = _mlp(0.5, seed)
    with pytest.raises(ValueError, match=r"mc_predict: `samples` must be an integer in \[1, 10000\]"):
        nn.mc_predict(model, rng.standard_normal((4, 5)), samples=10**9, seed=seed)


def test_default_keeps_samples_only_under_the_budget(seed, rng, monkeypatch):
    model = _mlp(0.5, seed)
    X = rng.standard_normal((20, 5)).astype(np.float32)
    small = nn.mc_predict(model, X, samples=10, seed=seed)
    assert small.samples is not None and small.samples.shape == (10, 20, 3)
    monkeypatch.setattr(mc_module, "SAMPLES_BUDGET", 10 * 20 * 3 * 8 - 1)  # one byte short
    streamed = nn.mc_predict(model, X, samples=10, seed=seed)
    assert streamed.samples is None
    np.testing.assert_array_equal(streamed.mean, small.mean)  # the same statistics, streamed
    np.testing.assert_array_equal(streamed.std, small.std)
    asked = nn.mc_predict(model, X, samples=10, seed=seed, keep_samples=True)
    np.testing.assert_array_equal(asked.samples, small.samples)


def test_keep_samples_must_be_a_bool_or_none(seed, rng):
    with pytest.raises(TypeError, match="`keep_samples` must be True, False or None"):
        nn.mc_predict(_mlp(0.5, seed), rng.standard_normal((4, 5)), samples=3, keep_samples="yes")


def test_stacked_first_dropout_draws_the_bits_of_the_stacked_copy(monkeypatch, seed):
    """mc_predict draws an opening element-wise dropout's mask on the stacked positions of the
    T passes (kernels.apply(repeats=T)) instead of stacking the batch: the same samples and
    statistics, bit for bit, and the same layer state, as stacking first."""
    from droplab.lab import models
    from droplab.nn import mc as mc_module

    X = np.random.default_rng(seed).standard_normal((300, 40)).astype(np.float32)
    results, states = [], []
    for stacked_head in (True, False):
        model = models.mlp(40, (64, 32), 10, p=0.3, seed=seed)
        model._loss = nn.SoftmaxCrossEntropy()
        if not stacked_head:
            monkeypatch.setattr(mc_module, "_stacked_head", lambda rest: (None, rest))
        results.append(nn.mc_predict(model, X, samples=30, keep_samples=True))  # the layers' own streams
        states.append([m.counter for m in model.modules() if m.is_dropout])
    a, b = results
    for name in ("samples", "mean", "std", "entropy", "mutual_information", "variation_ratio"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert states[0] == states[1]
