"""Rate schedules and max-norm: exact values, their effect inside fit, and every error."""

import numpy as np
import pytest

from droplab import nn
from droplab.nn.schedules import max_norm_


def _model(seed):
    return nn.Sequential(nn.Dense(3, 6), nn.ReLU(), nn.Dropout(0.5), nn.Dense(6, 6), nn.ReLU(),
                         nn.GaussianDropout(0.2),
                         nn.ConcreteDropout(nn.Dense(6, 2), init_p=0.2), seed=seed)


def _fit(model, callbacks, epochs, seen):
    class Spy:  # records p of every dropout layer as each epoch trains
        def on_epoch_end(self, epoch, logs, model):
            seen.append([m.p for m in model.modules() if m.is_dropout])

    X = np.random.default_rng(0).standard_normal((8, 3))
    model.fit(X, np.arange(8) % 2, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.01), epochs=epochs,
              verbose=False, callbacks=[*callbacks, Spy()])


def test_rates_are_exact():
    assert [nn.ConstantRate(0.3).rate(e) for e in range(3)] == [0.3, 0.3, 0.3]
    assert [nn.LinearRamp(0.0, 0.4, 5).rate(e) for e in range(7)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert [nn.LinearRamp(0.5, 0.1, 1).rate(e) for e in range(2)] == [0.1, 0.1]
    assert [nn.EarlyDropout(0.2, 2).rate(e) for e in range(4)] == [0.2, 0.2, 0.0, 0.0]


def test_schedule_sets_every_plain_rate_but_not_concrete(seed):
    model, seen = _model(seed), []
    _fit(model, [nn.EarlyDropout(0.3, 2)], 4, seen)
    assert [row[:2] for row in seen] == [[0.3, 0.3], [0.3, 0.3], [0.0, 0.0], [0.0, 0.0]]
    assert all(0.1 < row[2] < 0.3 for row in seen)  # ConcreteDropout's p is learned (from 0.2), never set


def test_schedule_on_chosen_layers_only(seed):
    model, seen = _model(seed), []
    _fit(model, [nn.LinearRamp(0.0, 0.2, 3, layers=[model[2]])], 3, seen)
    assert [row[0] for row in seen] == pytest.approx([0.0, 0.1, 0.2])
    assert all(row[1] == 0.2 for row in seen)


def test_schedule_cannot_set_an_invalid_rate(seed):
    model = _model(seed)
    with pytest.raises(ValueError, match=r"GaussianDropout: `p` must be a probability in \[0, 1\); got p=1.0"):
        _fit(model, [nn.ConstantRate(1.0)], 1, [])


def test_max_norm_projects_columns_after_every_step(seed):
    model = _model(seed)
    norms = []

    class Spy:
        def on_batch_end(self, step, model):
            norms.append(max(float(np.linalg.norm(p.value, axis=0).max()) for p in model.parameters()
                             if p.name == "weight"))

    X = np.random.default_rng(0).standard_normal((8, 3)) * 100
    # lr 0.01: large steps (the weights' norms pass 0.5 without the constraint, checked below)
    # that still train; SGD(0.1) or (1.0) on these inputs diverges, which fit now stops with an error
    model.fit(X, np.arange(8) % 2, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.01), epochs=3,
              batch_size=4, verbose=False, callbacks=[nn.MaxNorm(0.5), Spy()])
    assert len(norms) == 6 and max(norms) <= 0.5 * (1 + 1e-6)
    free, norms[:] = _model(seed), []
    free.fit(X, np.arange(8) % 2, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.01), epochs=3,
             batch_size=4, verbose=False, callbacks=[Spy()])
    assert max(norms) > 0.5  # the constraint had work to do


def test_max_norm_leaves_short_vectors_and_other_axes(rng):
    w = rng.standard_normal((4, 3))
    w[:, 0] *= 1e-3
    before = w.copy()
    max_norm_(w, 1.0, axis=(0,))
    assert np.array_equal(w[:, 0], before[:, 0])
    assert np.allclose(np.linalg.norm(w, axis=0)[1:], np.minimum(1.0, np.linalg.norm(before, axis=0)[1:]))
    conv = nn.Parameter(rng.standard_normal((5, 2, 3, 3)), "weight")  # (out, in, kh, kw): axes 1, 2, 3
    nn.MaxNorm(0.1, axis=(1, 2, 3), params=[conv]).on_batch_end(0, nn.Sequential())
    assert np.allclose(np.sqrt((conv.value**2).sum(axis=(1, 2, 3))), 0.1)
    zero = np.zeros((3, 2))
    assert np.array_equal(max_norm_(zero, 1.0), np.zeros((3, 2)))  # no division by a zero norm


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.ConstantRate(1.5), ValueError, r"ConstantRate: `p` must be a probability in \[0, 1\]; got p=1.5"),
    (lambda: nn.LinearRamp(0, 0.5, 0), ValueError, r"LinearRamp: `epochs` must be a positive integer; got epochs=0"),
    (lambda: nn.LinearRamp(-1, 0.5, 3), ValueError, r"LinearRamp: `start` must be a probability"),
    (lambda: nn.EarlyDropout(0.2, -1), ValueError, r"EarlyDropout: `epochs` must be a non-negative integer"),
    (lambda: nn.EarlyDropout(0.2, 2, layers=[nn.ReLU()]), TypeError,
     r"EarlyDropout: `layers` must be dropout-family layers; got layers='layer 0=ReLU\(\)'"),
    (lambda: nn.MaxNorm(0), ValueError, r"MaxNorm: `max_norm` must be a finite number > 0; got max_norm=0"),
    (lambda: nn.MaxNorm(1.0, axis="0"), TypeError, r"MaxNorm: `axis` must be an int or a tuple of distinct ints; got axis='0'"),
    (lambda: nn.MaxNorm(1.0, params=[np.ones(3)]), TypeError, r"MaxNorm: `params` must be droplab Parameters"),
])
def test_bad_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_max_norm_axis_must_fit_the_weight():
    with pytest.raises(ValueError, match=r"MaxNorm: `axis` must be axes of the 2-D weight \(3, 2\)"):
        nn.MaxNorm(1.0, axis=2).on_batch_end(0, nn.Dense(3, 2))
