"""droplab.sklearn: scikit-learn's estimator checks, model selection, and droplab's own promises
(hyperparameters checked in fit with one-line errors, labels, shapes, same random_state same bits,
MC dropout)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from droplab.sklearn import EXPECTED_FAILED_CHECKS, DropoutMLPClassifier, DropoutMLPRegressor


def _expected_failed(estimator) -> dict[str, str]:
    return dict(EXPECTED_FAILED_CHECKS)


# scikit-learn >= 1.6 takes the expected failures here; 1.3 to 1.5 read the `_xfail_checks` tag
_KW = ({"expected_failed_checks": _expected_failed}
       if "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters else {})


@parametrize_with_checks([DropoutMLPClassifier(), DropoutMLPRegressor()], **_KW)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- the reason given for the one expected failure holds -------------------------------------------
def test_subset_invariance_holds_in_float64():
    """The xfail above is float32 BLAS rounding: the same check passes with dtype='float64'."""
    from sklearn.utils.estimator_checks import check_methods_subset_invariance

    for est in (DropoutMLPClassifier(dtype="float64", max_iter=5), DropoutMLPRegressor(dtype="float64", max_iter=5)):
        check_methods_subset_invariance(type(est).__name__, est)


def test_subset_predictions_agree_within_float32_rounding(rng):
    # A row's prediction computed in a batch of 7 rows and in one of 200: only BLAS's blocking
    # differs. Each Dense output is a dot product of length k <= 100 in float32; its rounding
    # error is at most gamma_k * sum|x_i w_i| (gamma_k = k u / (1 - k u), u = 2**-24), about
    # 6e-6 relative for k = 100, through 2 layers: 1e-4 relative is far above it (a wrong row
    # or a lost mask would be off by O(1)), and far below any difference a user could act on.
    X = rng.standard_normal((200, 10))
    y = X[:, 0] - 2 * X[:, 1]
    reg = DropoutMLPRegressor(max_iter=20, random_state=0).fit(X, y)
    full = reg.predict(X)
    part = np.concatenate([reg.predict(X[i:i + 7]) for i in range(0, 200, 7)])
    np.testing.assert_allclose(part, full, rtol=1e-4, atol=1e-4 * np.abs(full).max())


# --- hyperparameters: stored unchanged, checked in fit with one line naming them ---------------------
@pytest.mark.parametrize("params, exc, match", [
    ({"p": 1.0}, ValueError, r"DropoutMLPClassifier: `p` must be a probability in \[0, 1\); got p=1\.0\."),
    ({"p": -0.1}, ValueError, r"`p` must be a probability in \[0, 1\); got p=-0\.1\."),
    ({"p": "half"}, TypeError, r"`p` must be a real number; got p='half'\."),
    ({"p": [0.1, 0.2]}, ValueError, r"`p` must be one probability, or one per hidden layer \(1\); got p=\[0\.1, 0\.2\]"),
    ({"hidden_layer_sizes": ()}, ValueError, r"`hidden_layer_sizes` must be a positive int or a non-empty sequence"),
    ({"hidden_layer_sizes": (10, 0)}, ValueError, r"`hidden_layer_sizes` must be .*; got hidden_layer_sizes=\(10, 0\)"),
    ({"hidden_layer_sizes": "10"}, TypeError, r"`hidden_layer_sizes` must be"),
    ({"hidden_layer_sizes": (8192, 8192, 8192)}, ValueError, r"`hidden_layer_sizes` must be layers with at most"),
    ({"activation": "rlu"}, ValueError, r"`activation` must be one of .*; got activation='rlu'\. Did you mean 'relu'\?"),
    ({"variant": "gausian"}, ValueError, r"`variant` must be one of .*Did you mean 'gaussian'\?"),
    ({"solver": "lbfgs"}, ValueError, r"`solver` must be one of 'adam', 'adamw', 'sgd'; got solver='lbfgs'\."),
    ({"learning_rate_init": 0}, ValueError, r"`learning_rate_init` must be a finite number > 0; got learning_rate_init=0\."),
    ({"batch_size": 0}, ValueError, r"`batch_size` must be a positive integer; got batch_size=0\."),
    ({"batch_size": "full"}, TypeError, r"`batch_size` must be 'auto' or a positive int; got batch_size='full'\."),
    ({"max_iter": 0}, ValueError, r"`max_iter` must be an integer in \[1, 100000\]; got max_iter=0\."),
    ({"max_iter": 2.5}, TypeError, r"`max_iter` must be an integer in \[1, 100000\]; got max_iter=2\.5\."),
    ({"l2": -1.0}, ValueError, r"`l2` must be a number in \[0, 1e\+06\]; got l2=-1\.0\."),
    ({"max_norm": 0}, ValueError, r"`max_norm` must be a finite number > 0; got max_norm=0\."),
    ({"momentum": 1.0}, ValueError, r"`momentum` must be a number in \[0, 1\); got momentum=1\.0\."),
    ({"weight_decay": -1}, ValueError, r"`weight_decay` must be a finite number >= 0; got weight_decay=-1\."),
    ({"dtype": "float16"}, TypeError, r"`dtype` must be float32 or float64; got dtype='float16'\."),
    ({"random_state": -1}, ValueError, r"`random_state` must be None, an int in \[0, 2\*\*32 - 1\]"),
    ({"random_state": "0"}, TypeError, r"`random_state` must be None, an int, a np\.random\.RandomState"),
    ({"verbose": "yes"}, TypeError, r"`verbose` must be a bool or an int; got verbose='yes'\."),
])
def test_bad_hyperparameter_is_one_line_naming_it(params, exc, match):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    clf = DropoutMLPClassifier(**params)  # scikit-learn's rule: __init__ stores, never checks
    assert clf.get_params()[next(iter(params))] is next(iter(params.values()))
    with pytest.raises(exc, match=match) as info:
        clf.fit(X, y)
    assert "\n" not in str(info.value)
    assert not hasattr(clf, "model_")


def test_regressor_names_itself_in_errors():
    with pytest.raises(ValueError, match=r"^DropoutMLPRegressor: `p` must be"):
        DropoutMLPRegressor(p=2).fit(np.zeros((4, 2)), np.zeros(4))


def test_label_errors():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"DropoutMLPClassifier: `y` must be labels of at least 2 classes; "
                                         r"got y='array with 1 class'\."):
        DropoutMLPClassifier().fit(X, ["a"] * 4)
    with pytest.raises(ValueError, match="Unknown label type"):  # scikit-learn's own message and check
        DropoutMLPClassifier().fit(X, [0.5, 1.5, 2.5, 3.25])


# --- labels, shapes, fitted attributes ------------------------------------------------------------
def _blobs(rng, n=120, k=3, d=4):
    centers = rng.standard_normal((k, d)) * 4
    y = np.arange(n) % k
    return (centers[y] + rng.standard_normal((n, d))), y


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([7, -1, 3]), np.array([True, False])],
                         ids=["str", "int", "bool"])
def test_labels_of_any_type(rng, labels):
    X, codes = _blobs(rng, k=len(labels))
    y = labels[codes]
    clf = DropoutMLPClassifier((16,), max_iter=30, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels)) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])


def test_fitted_attributes(rng):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((16, 8), p=[0.1, 0.3], max_iter=7, l2=1e-4, max_norm=3.0, random_state=0).fit(X, y)
    from droplab import nn

    assert clf.n_features_in_ == 4 and clf.n_iter_ == 7 and not hasattr(clf, "feature_names_in_")
    assert isinstance(clf.model_, nn.Sequential)
    assert [m.p for m in clf.model_.layers if isinstance(m, nn.Dropout)] == [0.1, 0.3]
    assert [m.out_features for m in clf.model_.layers if isinstance(m, nn.Dense)] == [16, 8, 3]
    assert set(clf.history_) == {"loss", "accuracy", "regularization_loss"}
    assert len(clf.history_["loss"]) == 7 and clf.loss_ == clf.history_["loss"][-1]
    for layer in clf.model_.layers:  # max-norm: every unit's incoming weights within radius 3 (+ rounding)
        if isinstance(layer, nn.Dense):
            assert np.linalg.norm(layer.weight.value.astype(np.float64), axis=0).max() <= 3.0 * (1 + 1e-6)


@pytest.mark.parametrize("variant, activation, layer", [("dropout", "relu", "Dropout"), ("classic", "tanh", "Dropout"),
                                                        ("gaussian", "logistic", "GaussianDropout"),
                                                        ("alpha", "selu", "AlphaDropout")])
def test_variants_and_activations(rng, variant, activation, layer):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((8,), activation=activation, variant=variant, p=0.2, max_iter=3,
                               random_state=0).fit(X, y)
    assert [type(m).__name__ for m in clf.model_.layers][2] == layer
    assert clf.model_.layers[2].p == 0.2
    assert clf.predict_proba(X).shape == (len(X), 3)


@pytest.mark.parametrize("solver, optimizer", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_solvers_train(rng, solver, optimizer, monkeypatch):
    from droplab import nn

    seen = []
    original = nn.Sequential.fit

    def spy(self, X, y, **kw):
        seen.append(type(kw["optimizer"]).__name__)
        return original(self, X, y, **kw)

    monkeypatch.setattr(nn.Sequential, "fit", spy)
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((16,), solver=solver, learning_rate_init=0.01, max_iter=40, random_state=0).fit(X, y)
    assert seen == [optimizer]
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]


def test_dtype_float64(rng):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((8,), dtype="float64", max_iter=2, random_state=0).fit(X, y)
    assert {p.value.dtype for p in clf.model_.parameters()} == {np.dtype(np.float64)}


@pytest.mark.parametrize("ndim", [1, 2])
def test_regressor_shapes(rng, ndim):
    X = rng.standard_normal((60, 3))
    y = X @ rng.standard_normal((3, 2))
    y = y[:, 0] if ndim == 1 else y
    reg = DropoutMLPRegressor((16,), max_iter=20, random_state=0).fit(X, y)
    assert reg.predict(X).shape == y.shape and reg.predict(X).dtype == np.float64
    mean, std = reg.mc_predict(X, samples=8, return_std=True)
    assert mean.shape == std.shape == y.shape and (std >= 0).all()
    assert set(reg.history_) == {"loss"} and not hasattr(reg, "classes_")
    y_col = y.reshape(len(y), -1)[:, :1]  # a one-column 2-D y stays 2-D
    assert DropoutMLPRegressor((4,), max_iter=2, random_state=0).fit(X, y_col).predict(X).shape == (60, 1)


def test_integer_targets_are_regression(rng):
    X = rng.standard_normal((50, 3))
    y = np.arange(50) % 5
    a = DropoutMLPRegressor((8,), max_iter=5, random_state=0).fit(X, y).predict(X)
    b = DropoutMLPRegressor((8,), max_iter=5, random_state=0).fit(X, y.astype(np.float64)).predict(X)
    np.testing.assert_array_equal(a, b)


# --- randomness: same random_state, same bits ------------------------------------------------------
def _weights(est):
    return [p.value.copy() for p in est.model_.parameters()]


@pytest.mark.parametrize("make_state", [lambda: 3, lambda: np.random.RandomState(3), lambda: np.random.default_rng(3)],
                         ids=["int", "RandomState", "Generator"])
def test_same_random_state_same_bits(rng, make_state):
    X, y = _blobs(rng)
    a = DropoutMLPClassifier((16,), max_iter=10, random_state=make_state()).fit(X, y)
    b = DropoutMLPClassifier((16,), max_iter=10, random_state=make_state()).fit(X, y)
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.mc_predict_proba(X, samples=10), b.mc_predict_proba(X, samples=10))
    assert a.history_ == b.history_


def test_refit_is_a_fresh_network(rng):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((16,), max_iter=5, random_state=0)
    first = _weights(clf.fit(X, y))
    second = _weights(clf.fit(X, y))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_different_or_no_random_state_differs(rng):
    X, y = _blobs(rng)
    w = [_weights(DropoutMLPClassifier((16,), max_iter=2, random_state=s).fit(X, y))[0] for s in (0, 1, None, None)]
    assert not np.array_equal(w[0], w[1]) and not np.array_equal(w[2], w[3])


def test_mc_predict_proba_is_repeatable_and_samples(rng):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((32,), p=0.5, max_iter=10).fit(X, y)  # random_state=None: fixed at fit
    m1, s1 = clf.mc_predict_proba(X, samples=20, return_std=True)
    m2 = clf.mc_predict_proba(X, samples=20)
    np.testing.assert_array_equal(m1, m2)
    assert m1.shape == s1.shape == (len(X), 3) and (s1 > 0).any()
    np.testing.assert_allclose(m1.sum(axis=1), 1, rtol=0, atol=1e-12)
    assert not np.array_equal(m1, clf.mc_predict_proba(X, samples=20, seed=123))
    np.testing.assert_array_equal(clf.mc_predict_proba(X, samples=20, seed=123),
                                  clf.mc_predict_proba(X, samples=20, seed=123))


def test_mc_at_p0_is_predict(rng):
    # no layer samples: mc_predict runs predict's own pass (the engine's exactness promise)
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier((16,), p=0.0, max_iter=5, random_state=0).fit(X, y)
    mean, std = clf.mc_predict_proba(X, samples=5, return_std=True)
    np.testing.assert_array_equal(mean, clf.predict_proba(X))
    assert not std.any()


def test_mc_before_fit_and_bad_samples(rng):
    from sklearn.exceptions import NotFittedError

    X, y = _blobs(rng)
    with pytest.raises(NotFittedError):
        DropoutMLPClassifier().mc_predict_proba(X)
    with pytest.raises(NotFittedError):
        DropoutMLPRegressor().mc_predict(X)
    clf = DropoutMLPClassifier((4,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"mc_predict: `samples` must be a positive integer; got samples=0\."):
        clf.mc_predict_proba(X, samples=0)
    with pytest.raises(ValueError, match="X has 3 features, but DropoutMLPClassifier is expecting 4"):
        clf.mc_predict_proba(X[:, :3])


def test_feature_names_from_a_dataframe(rng):
    pd = pytest.importorskip("pandas")
    X, y = _blobs(rng)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DropoutMLPClassifier((8,), max_iter=2, random_state=0).fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(clf.predict_proba(df), clf.predict_proba(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"a": "z"}))


# --- model selection ------------------------------------------------------------------------------
def test_grid_search_two_jobs(rng):
    from sklearn.model_selection import GridSearchCV

    X, y = _blobs(rng, n=90)
    search = GridSearchCV(DropoutMLPClassifier((16,), max_iter=20, random_state=0), {"p": [0, 0.3]}, cv=3, n_jobs=2)
    search.fit(X, y)
    assert search.best_params_["p"] in (0, 0.3)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X).shape == (90,)
    # the parallel run scores what a serial one does: same random_state, same bits
    serial = GridSearchCV(DropoutMLPClassifier((16,), max_iter=20, random_state=0), {"p": [0, 0.3]}, cv=3).fit(X, y)
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"])


def test_cross_val_score_and_pipeline(rng):
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = rng.standard_normal((90, 3))
    y = X[:, 0] - X[:, 1]
    scores = cross_val_score(make_pipeline(StandardScaler(), DropoutMLPRegressor((16,), max_iter=50, random_state=0)),
                             X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_grid_search_on_dask(rng):
    """GridSearchCV through joblib's Dask backend, on a real local cluster (2 worker processes)."""
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y = _blobs(rng, n=90)
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            search = GridSearchCV(DropoutMLPClassifier((16,), max_iter=20, random_state=0), {"p": [0, 0.3]},
                                  cv=3).fit(X, y)
    local = GridSearchCV(DropoutMLPClassifier((16,), max_iter=20, random_state=0), {"p": [0, 0.3]}, cv=3).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])


def test_readme_example_runs_as_written():
    import contextlib
    import io
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "DropoutMLPClassifier" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    params, scores = out.getvalue().splitlines()
    assert "'p'" in params and "'l2'" in params
    assert scores.startswith("[") and len(scores.strip("[]").split()) == 3


def test_numpy_arrays_as_hyperparameters(rng):
    X, y = _blobs(rng)
    clf = DropoutMLPClassifier(np.array([8, 4]), p=np.array([0.1, 0.2]), max_iter=2, random_state=0).fit(X, y)
    from droplab import nn

    assert [m.p for m in clf.model_.layers if isinstance(m, nn.Dropout)] == [0.1, 0.2]
