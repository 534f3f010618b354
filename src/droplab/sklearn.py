"""scikit-learn estimators over droplab's NumPy engine: a dropout MLP for model selection.

:class:`DropoutMLPClassifier` and :class:`DropoutMLPRegressor` follow scikit-learn's rules, so
``GridSearchCV``, ``cross_val_score``, ``Pipeline`` and ``clone`` work with them: every
hyperparameter is an ``__init__`` keyword stored unchanged, checked in ``fit``; what ``fit``
learns ends with an underscore (``model_`` is the trained :class:`droplab.nn.Sequential`).

Names shared with scikit-learn's ``MLPClassifier`` (``hidden_layer_sizes``, ``activation``,
``solver``, ``learning_rate_init``, ``batch_size``, ``max_iter``, ``momentum``,
``random_state``, ``verbose``) mean the same thing there and here, so a parameter grid written
for one works for the other. The L2 penalty is ``l2``, not ``alpha``: droplab adds
``l2 * sum(W**2)`` to the mean loss, while scikit-learn's ``alpha`` is divided by twice the
batch size (``alpha`` corresponds to ``l2 = alpha / (2 * batch_size)``), and ``"alpha"`` is
also a dropout variant here.

Randomness: the network's initial weights, its dropout masks, the shuffling and the MC
dropout passes all derive from ``random_state`` (one ``numpy.random.SeedSequence``), so the
same ``random_state`` gives the same bits. Sample weights are not supported.

Reference:
    Srivastava, Hinton, Krizhevsky, Sutskever and Salakhutdinov, "Dropout: A Simple Way to
    Prevent Neural Networks from Overfitting", JMLR 15, 2014 (their p is the retain
    probability: theirs is ``1 - p`` here). Gal and Ghahramani, "Dropout as a Bayesian
    Approximation: Representing Model Uncertainty in Deep Learning", ICML 2016 (MC dropout).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from droplab import _rng, _validate, nn
from droplab.errors import InvalidTypeError, InvalidValueError

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.3 to 1.5: the method form
    _sk_validate_data = None

__all__ = ["DropoutMLPClassifier", "DropoutMLPRegressor", "VARIANTS", "ACTIVATIONS", "SOLVERS",
           "EXPECTED_FAILED_CHECKS"]

#: dropout variant name -> factory(p) of a layer for ``(N, features)`` activations
VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": lambda p: nn.Dropout(p),  # inverted: train x * m / (1 - p), eval x
    "classic": lambda p: nn.Dropout(p, inverted=False),  # train x * m, eval x * (1 - p)
    "gaussian": lambda p: nn.GaussianDropout(p),  # x * (1 + sqrt(p / (1 - p)) * N(0, 1))
    "alpha": lambda p: nn.AlphaDropout(p),  # keeps SELU's mean and variance: pair with activation="selu"
}

#: activation name -> (layer factory, the Dense initialisation that suits it)
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "relu": (nn.ReLU, "he"),
    "leaky_relu": (nn.LeakyReLU, "he"),
    "tanh": (nn.Tanh, "glorot"),
    "logistic": (nn.Sigmoid, "glorot"),  # scikit-learn's name
    "sigmoid": (nn.Sigmoid, "glorot"),
    "selu": (nn.SELU, "lecun"),
}

SOLVERS = ("adam", "adamw", "sgd")

#: Checks of ``sklearn.utils.estimator_checks`` that these estimators may fail, with the reason
#: (for ``parametrize_with_checks(expected_failed_checks=...)`` and the ``_xfail_checks`` tag of
#: scikit-learn < 1.6). Every other check passes.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_methods_subset_invariance": (
        "float32 by default: BLAS picks its kernel by the number of rows, so a row predicted alone and "
        "in a batch of 20 can differ in the last bits (about 1e-7 relative), the check's tolerance; "
        "with dtype='float64' it passes."),
}

_MAX_CLASSES = _validate.MAX_WIDTH  # the output layer is one unit per class


def _validate_data(est: BaseEstimator, X, y="no_validation", **kw):
    """scikit-learn's own input checks (``n_features_in_``, ``feature_names_in_``, NaN, sparse)."""
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, **kw)
    return est._validate_data(X, y, **kw)  # pragma: no cover


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class _DropoutMLP(BaseEstimator):
    """What the classifier and the regressor share: hyperparameters, the network, training."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, p=0.5, variant="dropout",
                 solver="adam", learning_rate_init=0.001, batch_size="auto", max_iter=200, l2=0.0,
                 max_norm=None, momentum=0.9, weight_decay=0.01, dtype="float32", random_state=None,
                 verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.p = p
        self.variant = variant
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.l2 = l2
        self.max_norm = max_norm
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # -- hyperparameters, checked when fit starts ------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        """Every hyperparameter, validated, in the form the engine takes."""
        where = type(self).__name__
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, np.ndarray) and sizes.ndim == 1:
            sizes = sizes.tolist()
        if _is_int(sizes):
            sizes = (sizes,)
        allowed = "a positive int or a non-empty sequence of positive ints"
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not all(_is_int(s) for s in sizes):
            raise InvalidTypeError(_validate.message(where, "hidden_layer_sizes", allowed, self.hidden_layer_sizes))
        if not sizes or any(s < 1 for s in sizes):
            raise InvalidValueError(_validate.message(where, "hidden_layer_sizes", allowed, self.hidden_layer_sizes))
        sizes = _validate.hidden_sizes(where, "hidden_layer_sizes", [int(s) for s in sizes])

        p = self.p
        if isinstance(p, np.ndarray):
            p = p.tolist()
        if isinstance(p, Sequence) and not isinstance(p, (str, bytes)):
            if len(p) != len(sizes):
                raise InvalidValueError(_validate.message(
                    where, "p", f"one probability, or one per hidden layer ({len(sizes)})", self.p))
            ps = tuple(_validate.probability(where, "p", v, allow_one=False) for v in p)
        else:
            ps = (_validate.probability(where, "p", p, allow_one=False),) * len(sizes)

        batch_size = self.batch_size
        if not (isinstance(batch_size, str) and batch_size == "auto"):
            if not _is_int(batch_size):
                raise InvalidTypeError(_validate.message(where, "batch_size", "'auto' or a positive int", batch_size))
            batch_size = _validate.positive_int(where, "batch_size", batch_size)

        max_norm = self.max_norm
        if max_norm is not None:
            max_norm = _validate.positive_float(where, "max_norm", max_norm)
        momentum = _validate.nonnegative_float(where, "momentum", self.momentum)
        if momentum >= 1:
            raise InvalidValueError(_validate.message(where, "momentum", "a number in [0, 1)", self.momentum))
        if not isinstance(self.verbose, (bool, np.bool_)) and not _is_int(self.verbose):
            raise InvalidTypeError(_validate.message(where, "verbose", "a bool or an int", self.verbose))
        return {
            "sizes": sizes, "ps": ps, "batch_size": batch_size, "max_norm": max_norm, "momentum": momentum,
            "activation": _validate.one_of(where, "activation", self.activation, ACTIVATIONS),
            "variant": _validate.one_of(where, "variant", self.variant, VARIANTS),
            "solver": _validate.one_of(where, "solver", self.solver, SOLVERS),
            "lr": _validate.within(where, "lr", self.learning_rate_init, name="learning_rate_init"),
            "epochs": _validate.within(where, "epochs", self.max_iter, name="max_iter"),
            "l2": _validate.within(where, "l2", self.l2),
            "weight_decay": _validate.nonnegative_float(where, "weight_decay", self.weight_decay),
            "dtype": _validate.float_dtype(where, self.dtype),
            "seed": self._seed_sequence(where),
            "verbose": bool(self.verbose),
        }

    def _seed_sequence(self, where: str) -> np.random.SeedSequence:
        """``random_state`` as a SeedSequence: None (fresh entropy), an int in [0, 2**32 - 1], a
        ``np.random.RandomState`` (one 31-bit draw from it, as scikit-learn's own estimators do,
        so the same state gives the same seed) or a ``np.random.Generator``."""
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            return np.random.SeedSequence(int(rs.randint(np.iinfo(np.int32).max)))
        if _is_int(rs) and not 0 <= rs <= 2**32 - 1:
            raise InvalidValueError(_validate.message(where, "random_state", "None, an int in [0, 2**32 - 1], a "
                                                      "np.random.RandomState or a np.random.Generator", rs))
        if not (rs is None or _is_int(rs) or isinstance(rs, np.random.Generator)):
            raise InvalidTypeError(_validate.message(where, "random_state", "None, an int, a np.random.RandomState "
                                                     "or a np.random.Generator", rs))
        return _rng.seed_sequence(rs if rs is None or isinstance(rs, np.random.Generator) else int(rs), where)

    # -- the network and its training ---------------------------------------------------------
    def _build(self, cfg: dict[str, Any], inputs: int, outputs: int, seed: np.random.SeedSequence) -> nn.Sequential:
        """``Dense -> activation -> dropout(p_i)`` per hidden layer, then a Dense to the outputs."""
        act, init = ACTIVATIONS[cfg["activation"]]
        layers: list[nn.Module] = []
        width = inputs
        for h, p in zip(cfg["sizes"], cfg["ps"]):
            layers += [nn.Dense(width, h, l2=cfg["l2"], init=init, dtype=cfg["dtype"]), act(),
                       VARIANTS[cfg["variant"]](p)]
            width = h
        layers.append(nn.Dense(width, outputs, l2=cfg["l2"], init="glorot", dtype=cfg["dtype"]))
        return nn.Sequential(*layers, seed=seed)

    def _optimizer(self, cfg: dict[str, Any]) -> nn.Optimizer:
        if cfg["solver"] == "sgd":
            return nn.SGD(cfg["lr"], momentum=cfg["momentum"])
        if cfg["solver"] == "adamw":
            return nn.AdamW(cfg["lr"], weight_decay=cfg["weight_decay"])
        return nn.Adam(cfg["lr"])

    def _train(self, cfg: dict[str, Any], X: np.ndarray, y: np.ndarray, outputs: int, loss: nn.Loss) -> None:
        model_seed, mc_seed = cfg["seed"].spawn(2)
        model = self._build(cfg, X.shape[1], outputs, model_seed)
        batch_size = min(200, len(X)) if cfg["batch_size"] == "auto" else min(cfg["batch_size"], len(X))
        callbacks = [nn.MaxNorm(cfg["max_norm"])] if cfg["max_norm"] is not None else []
        history = model.fit(X, y, loss=loss, optimizer=self._optimizer(cfg), epochs=cfg["epochs"],
                            batch_size=batch_size, verbose=cfg["verbose"], callbacks=callbacks)
        self.model_ = model
        self.history_ = history
        self.loss_ = float(history["loss"][-1])
        self.n_iter_ = len(history["loss"])
        # entropy and spawn key, not the object: spawning from a SeedSequence changes it
        self._mc_seed = (mc_seed.entropy, mc_seed.spawn_key)

    def _X(self, X, *, reset: bool, y="no_validation"):
        """``X`` (and ``y`` when fitting) through scikit-learn's checks, as a C-ordered array of
        the network's dtype (C order: the same bits whatever the caller's layout)."""
        if not reset:
            return _validate_data(self, X, reset=False, dtype=self._dtype, order="C")
        regressor = isinstance(self, RegressorMixin)
        return _validate_data(self, X, y, reset=True, dtype=self._dtype, order="C", multi_output=regressor,
                              y_numeric=regressor)

    def _mc(self, X, samples: int, seed):
        check_is_fitted(self)
        X = self._X(X, reset=False)
        if seed is None:
            entropy, key = self._mc_seed
            seed = np.random.SeedSequence(entropy, spawn_key=key)
        return nn.mc_predict(self.model_, X, samples=samples, seed=seed)

    # -- scikit-learn tags: __sklearn_tags__ (>= 1.6) and _more_tags (1.3 to 1.5) ----------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # the same random_state gives the same bits
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {"_xfail_checks": dict(EXPECTED_FAILED_CHECKS)} if EXPECTED_FAILED_CHECKS else {}


_ARGS = """
    Args:
        hidden_layer_sizes (int | tuple[int, ...]): units of each hidden layer; at least one
            layer. Default ``(100,)``.
        activation (str): ``"relu"`` (default), ``"leaky_relu"``, ``"tanh"``, ``"logistic"``
            (or ``"sigmoid"``) or ``"selu"``; each hidden Dense is initialised for it (He,
            Glorot or LeCun).
        p (float | sequence of float): probability that a hidden unit is zeroed (not the keep
            probability), in [0, 1): one value for every hidden layer, or one per hidden layer.
            Default {p}.
        variant (str): the dropout layer after each hidden activation: ``"dropout"``
            (inverted, default: training ``x * m / (1 - p)``, identity in eval),
            ``"classic"`` (training ``x * m``, eval ``x * (1 - p)``), ``"gaussian"``
            (multiplicative ``N(1, p / (1 - p))`` noise) or ``"alpha"`` (for ``"selu"``).
        solver (str): ``"adam"`` (default), ``"adamw"`` (decoupled weight decay) or ``"sgd"``
            (with ``momentum``).
        learning_rate_init (float): the optimizer's learning rate, > 0, constant. Default 0.001.
        batch_size (int | "auto"): rows per mini-batch; ``"auto"`` (default) is
            ``min(200, n_samples)``, and a size above ``n_samples`` trains on the full batch.
        max_iter (int): epochs (passes over the training data), 1 to 100000. Every epoch is
            run: there is no tolerance-based stop. Default 200.
        l2 (float): L2 penalty ``l2 * sum(W**2)`` on every Dense weight, added to the mean loss,
            in [0, 1e6]. scikit-learn's ``alpha`` corresponds to ``alpha / (2 * batch_size)``.
            Default 0.
        max_norm (float | None): after every step, each unit's incoming weight vector is
            projected onto the ball of this radius (Srivastava et al. 2014 used 3 to 4). None
            (default): off.
        momentum (float): SGD momentum in [0, 1); used by ``solver="sgd"``. Default 0.9.
        weight_decay (float): AdamW's decoupled weight decay, >= 0; used by
            ``solver="adamw"``. Default 0.01.
        dtype (str | numpy dtype): ``"float32"`` (default) or ``"float64"``, the network's
            arithmetic.
        random_state (None | int | np.random.RandomState | np.random.Generator): seed of the
            initial weights, the dropout masks, the shuffling and the MC passes. An int gives
            the same bits every fit; a RandomState contributes one draw (as in scikit-learn);
            None takes fresh entropy. Default None.
        verbose (bool | int): show a progress bar over the epochs. Default False.
"""


class DropoutMLPClassifier(ClassifierMixin, _DropoutMLP):
    """A multi-layer perceptron with dropout after every hidden layer, as a scikit-learn classifier.

    Each hidden layer is ``Dense -> activation -> dropout(p)``; the output layer has one unit
    per class and is trained with softmax cross-entropy (binary problems too). In training
    each hidden unit is zeroed with probability ``p`` and the survivors are scaled by
    ``1 / (1 - p)``; ``predict`` and ``predict_proba`` run the network in eval mode (dropout
    off: the weight-scaling approximation of the average over thinned networks).
    :meth:`mc_predict_proba` averages ``samples`` passes with dropout on instead (MC dropout).
{args}
    Attributes:
        classes_ (ndarray): the distinct labels, sorted; column ``k`` of ``predict_proba`` is
            ``classes_[k]``. Any labels scikit-learn accepts (ints, strings, bools).
        n_features_in_ (int): number of input features.
        feature_names_in_ (ndarray): column names, when ``X`` had string column names.
        model_ (droplab.nn.Sequential): the trained network (outputs are logits).
        history_ (dict[str, list[float]]): per-epoch ``"loss"`` and ``"accuracy"`` (training
            mode, dropout on), and ``"regularization_loss"`` when ``l2 > 0``.
        loss_ (float): the last epoch's mean training loss.
        n_iter_ (int): epochs run (``max_iter``).

    Raises:
        ValueError: in ``fit``, a hyperparameter out of range (the message names it), fewer
            than 2 classes, continuous or multi-output labels, NaN/inf or empty ``X``.
        TypeError: in ``fit``, a hyperparameter of the wrong type; sparse ``X``.
        droplab.nn.DivergenceError: (a FloatingPointError) the training loss diverged; lower
            ``learning_rate_init``.
        sklearn.exceptions.NotFittedError: predicting before ``fit``.

    Example:
        >>> from sklearn.datasets import make_moons
        >>> from droplab.sklearn import DropoutMLPClassifier
        >>> X, y = make_moons(200, noise=0.2, random_state=0)
        >>> clf = DropoutMLPClassifier((32,), p=0.2, max_iter=100, random_state=0).fit(X, y)
        >>> clf.classes_, clf.n_features_in_, clf.n_iter_
        (array([0, 1]), 2, 100)
        >>> clf.predict_proba(X[:5]).shape, bool(clf.score(X, y) > 0.8)
        ((5, 2), True)
        >>> mean, std = clf.mc_predict_proba(X[:5], samples=30, return_std=True)
        >>> mean.shape, bool((mean.sum(axis=1).round(6) == 1).all())
        ((5, 2), True)

    Reference:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
        Overfitting", JMLR 2014 (their retain probability is ``1 - p``). Gal and Ghahramani,
        "Dropout as a Bayesian Approximation", ICML 2016 (MC dropout).
    """

    def fit(self, X, y) -> DropoutMLPClassifier:
        """Train a new network on ``(X, y)`` (``max_iter`` epochs); returns self.

        Args:
            X: array-like ``(n_samples, n_features)``, finite.
            y: labels ``(n_samples,)``, at least 2 distinct values.
        """
        cfg = self._checked()
        self._dtype = cfg["dtype"]
        X, y = self._X(X, reset=True, y=y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        where = type(self).__name__
        if len(classes) < 2:
            raise InvalidValueError(_validate.message(where, "y", "labels of at least 2 classes",
                                                      f"array with {len(classes)} class"))
        if len(classes) > _MAX_CLASSES:
            raise InvalidValueError(_validate.message(where, "y", f"labels of at most {_MAX_CLASSES} classes",
                                                      f"array with {len(classes)} classes"))
        self.classes_ = classes
        self._train(cfg, X, codes.reshape(-1).astype(np.int64), len(classes), nn.SoftmaxCrossEntropy())
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)`` from one eval-mode pass (dropout off)."""
        check_is_fitted(self)
        X = self._X(X, reset=False)
        proba = self.model_.predict(X).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as a label from ``classes_``."""
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def mc_predict_proba(self, X, samples: int = 50, *, return_std: bool = False, seed=None):
        """MC dropout: the mean of ``samples`` stochastic passes with dropout on.

        Only the dropout layers sample; the passes are drawn from a stream derived from
        ``random_state`` at ``fit``, so repeated calls give the same bits.

        Args:
            X: array-like ``(n_samples, n_features)``.
            samples (int): passes ``T``, 1 to 10000. Default 50.
            return_std (bool): also return the standard deviation over the passes.
            seed (None | int | np.random.Generator): another stream for the masks; None
                (default) uses the one fixed at ``fit``.

        Returns:
            ``(n_samples, n_classes)`` predictive mean (rows sum to 1), and the std of the
            same shape when ``return_std``. For entropy and mutual information use
            ``droplab.nn.mc_predict(clf.model_, X, samples=T)``.
        """
        r = self._mc(X, samples, seed)
        mean = r.mean / r.mean.sum(axis=1, keepdims=True)
        return (mean, r.std) if return_std else mean


class DropoutMLPRegressor(RegressorMixin, _DropoutMLP):
    """A multi-layer perceptron with dropout after every hidden layer, as a scikit-learn regressor.

    Each hidden layer is ``Dense -> activation -> dropout(p)``; a linear output layer with one
    unit per target is trained on the mean squared error. In training each hidden unit is
    zeroed with probability ``p`` and the survivors are scaled by ``1 / (1 - p)``;
    ``predict`` runs the network in eval mode (dropout off). :meth:`mc_predict` averages
    ``samples`` passes with dropout on and gives their spread (MC dropout).
{args}
    Attributes:
        n_features_in_ (int): number of input features.
        feature_names_in_ (ndarray): column names, when ``X`` had string column names.
        model_ (droplab.nn.Sequential): the trained network.
        history_ (dict[str, list[float]]): per-epoch ``"loss"`` (training mode, dropout on),
            and ``"regularization_loss"`` when ``l2 > 0``.
        loss_ (float): the last epoch's mean training loss (mean squared error).
        n_iter_ (int): epochs run (``max_iter``).

    Raises:
        ValueError: in ``fit``, a hyperparameter out of range (the message names it), NaN/inf
            or empty ``X`` or ``y``.
        TypeError: in ``fit``, a hyperparameter of the wrong type; sparse ``X``.
        droplab.nn.DivergenceError: (a FloatingPointError) the training loss diverged; lower
            ``learning_rate_init`` or scale ``y``.
        sklearn.exceptions.NotFittedError: predicting before ``fit``.

    Example:
        >>> from sklearn.datasets import make_regression
        >>> from droplab.sklearn import DropoutMLPRegressor
        >>> X, y = make_regression(200, 5, noise=1.0, random_state=0)
        >>> reg = DropoutMLPRegressor((64,), p=0.1, learning_rate_init=0.01, max_iter=200,
        ...                           random_state=0).fit(X, y / y.std())
        >>> reg.predict(X[:3]).shape, bool(reg.score(X, y / y.std()) > 0.9)
        ((3,), True)
        >>> mean, std = reg.mc_predict(X[:3], samples=30, return_std=True)
        >>> mean.shape, std.shape, bool((std > 0).all())
        ((3,), (3,), True)

    Reference:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
        Overfitting", JMLR 2014 (their retain probability is ``1 - p``). Gal and Ghahramani,
        "Dropout as a Bayesian Approximation", ICML 2016 (MC dropout).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, p=0.1, variant="dropout",
                 solver="adam", learning_rate_init=0.001, batch_size="auto", max_iter=200, l2=0.0,
                 max_norm=None, momentum=0.9, weight_decay=0.01, dtype="float32", random_state=None,
                 verbose=False):
        super().__init__(hidden_layer_sizes, activation, p=p, variant=variant, solver=solver,
                         learning_rate_init=learning_rate_init, batch_size=batch_size, max_iter=max_iter,
                         l2=l2, max_norm=max_norm, momentum=momentum, weight_decay=weight_decay, dtype=dtype,
                         random_state=random_state, verbose=verbose)

    def fit(self, X, y) -> DropoutMLPRegressor:
        """Train a new network on ``(X, y)`` (``max_iter`` epochs); returns self.

        Args:
            X: array-like ``(n_samples, n_features)``, finite.
            y: targets ``(n_samples,)`` or ``(n_samples, n_targets)``, finite.
        """
        cfg = self._checked()
        self._dtype = cfg["dtype"]
        X, y = self._X(X, reset=True, y=y)
        self._y_ndim = y.ndim
        y2 = np.asarray(y, dtype=cfg["dtype"]).reshape(len(y), -1)
        self._train(cfg, X, y2, y2.shape[1], nn.MSELoss())
        return self

    def _shaped(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float64)
        return out.reshape(-1) if self._y_ndim == 1 else out

    def predict(self, X) -> np.ndarray:
        """Predictions from one eval-mode pass (dropout off), shaped like the ``y`` of ``fit``."""
        check_is_fitted(self)
        X = self._X(X, reset=False)
        return self._shaped(self.model_.predict(X))

    def mc_predict(self, X, samples: int = 50, *, return_std: bool = False, seed=None):
        """MC dropout: the mean (and std) of ``samples`` stochastic passes with dropout on.

        Only the dropout layers sample; the passes are drawn from a stream derived from
        ``random_state`` at ``fit``, so repeated calls give the same bits.

        Args:
            X: array-like ``(n_samples, n_features)``.
            samples (int): passes ``T``, 1 to 10000. Default 50.
            return_std (bool): also return the standard deviation over the passes (the
                model's uncertainty, without an observation-noise term).
            seed (None | int | np.random.Generator): another stream for the masks; None
                (default) uses the one fixed at ``fit``.

        Returns:
            The predictive mean, shaped like ``predict``'s output, and the std of the same
            shape when ``return_std``.
        """
        r = self._mc(X, samples, seed)
        mean, std = self._shaped(r.mean), self._shaped(r.std)
        return (mean, std) if return_std else mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {**super()._more_tags(), "multioutput": True}


for _cls, _p in ((DropoutMLPClassifier, "0.5 (Srivastava et al. 2014's choice for hidden units)"),
                 (DropoutMLPRegressor, "0.1 (regression fits suffer more from large rates; Gal and "
                                       "Ghahramani 2016 used 0.05 and less)")):
    _cls.__doc__ = _cls.__doc__.replace("{args}", _ARGS.replace("{p}", _p))
del _cls, _p
