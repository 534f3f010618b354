"""Metrics for classifiers and MC-dropout uncertainty, in pure NumPy.

Inputs follow one convention: ``probs`` is an ``(N, K)`` array of class probabilities (rows
sum to 1), or a ``(T, N, K)`` stack of ``T`` stochastic forward passes (MC dropout samples),
which the scoring functions average over ``T`` first (the MC predictive mean); ``y`` holds
``N`` integer labels in ``[0, K)``. Entropies are in nats.

Reference:
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (ECE, reliability).
    Gal, "Uncertainty in Deep Learning", PhD thesis, 2016, section 3.3 (predictive entropy,
    mutual information, variation ratio).
    Hanley and McNeil, "The meaning and use of the area under a ROC curve", Radiology 1982
    (AUROC as the Mann-Whitney U statistic).
"""

from __future__ import annotations

from dataclasses import dataclass

from droplab.errors import InvalidValueError
import numpy as np

from droplab import _validate as v

__all__ = [
    "Reliability",
    "accuracy",
    "nll",
    "brier",
    "ece",
    "reliability",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    "auroc",
]

_ROW_SUM_TOL = 1e-3
_PROBS_HINT = "Pass class probabilities (e.g. softmax outputs), not logits."


# --- validation ---------------------------------------------------------------------------


def _probs(
    where: str, value, *, ndims: tuple[int, ...], name: str = "probs", min_classes: int = 1
) -> np.ndarray:
    """A float64 array of probability rows of one of the ranks in ``ndims``."""
    arr = v.finite_array(where, name, value)
    if arr.ndim not in ndims:
        allowed = " or ".join({2: "a 2-D (N, K) array", 3: "a 3-D (T, N, K) array"}[d] for d in ndims)
        raise InvalidValueError(v.message(where, name, allowed, f"array of shape {arr.shape}"))
    if arr.shape[-1] < min_classes:
        raise InvalidValueError(
            v.message(where, name, f"an array with K >= {min_classes} classes (last axis)", f"array of shape {arr.shape}")
        )
    arr = arr.astype(np.float64, copy=False)
    lead = arr.shape[:-1]

    def where_is(flat: int) -> str:
        idx = np.unravel_index(flat, lead)
        return f"row {idx[0]}" if len(idx) == 1 else f"(pass {idx[0]}, row {idx[1]})"

    out = (arr < 0.0) | (arr > 1.0)
    if out.any():
        flat = int(np.argmax(out.any(axis=-1).ravel()))
        bad = arr.reshape(-1, arr.shape[-1])[flat]
        worst = float(bad[(bad < 0.0) | (bad > 1.0)][0])
        raise InvalidValueError(
            v.message(where, name, "probabilities in [0, 1]", f"{where_is(flat)} containing {worst:.6g}", _PROBS_HINT)
        )
    sums = arr.sum(axis=-1)
    off = np.abs(sums - 1.0) > _ROW_SUM_TOL
    if off.any():
        flat = int(np.argmax(off.ravel()))
        raise InvalidValueError(
            v.message(
                where,
                name,
                f"rows summing to 1 (within {_ROW_SUM_TOL:g})",
                f"{where_is(flat)} summing to {float(sums.ravel()[flat]):.6g}",
                _PROBS_HINT,
            )
        )
    return arr


def _scored(where: str, probs, y) -> tuple[np.ndarray, np.ndarray]:
    """``(N, K)`` probabilities (MC stacks averaged over T) and ``(N,)`` labels in [0, K)."""
    p = _probs(where, probs, ndims=(2, 3), min_classes=2)
    if p.ndim == 3:
        p = p.mean(axis=0)
    n, k = p.shape
    labels = v.labels(where, "y", y, classes=k)
    if labels.shape != (n,):
        raise InvalidValueError(
            v.message(where, "y", f"a 1-D array of {n} labels (one per row of probs)", f"array of shape {labels.shape}")
        )
    return p, labels


def _bins(where: str, bins) -> int:
    return v.positive_int(where, "bins", bins)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, with 0 log 0 = 0."""
    safe = np.where(p > 0.0, p, 1.0)
    return -np.sum(p * np.log(safe), axis=-1)


# --- scoring ------------------------------------------------------------------------------


def accuracy(probs, y) -> float:
    """Fraction of samples whose most probable class (first one on ties) is the label.

    Args:
        probs: ``(N, K)`` class probabilities, or ``(T, N, K)`` MC samples (averaged over T).
        y: ``(N,)`` integer labels in ``[0, K)``.

    Returns:
        The accuracy, a float in [0, 1].

    Raises:
        TypeError: non-numeric ``probs`` or non-integer ``y``.
        ValueError: bad shapes, values outside [0, 1], rows not summing to 1, labels out of range.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import accuracy
        >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> round(accuracy(probs, [0, 1, 1]), 4)
        0.6667
    """
    p, labels = _scored("accuracy", probs, y)
    return float(np.mean(np.argmax(p, axis=-1) == labels))


def nll(probs, y, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the labels, ``-mean(log p[n, y_n])``, in nats.

    Probabilities are clipped to ``[eps, 1]`` first so a confident mistake costs
    ``-log(eps)`` instead of infinity.

    Args:
        probs: ``(N, K)`` class probabilities, or ``(T, N, K)`` MC samples (averaged over T).
        y: ``(N,)`` integer labels in ``[0, K)``.
        eps: the floor applied to probabilities, in (0, 1). Default 1e-12.

    Returns:
        The mean NLL, a float >= 0.

    Raises:
        TypeError: non-numeric ``probs`` or ``eps``, non-integer ``y``.
        ValueError: bad shapes or values (see :func:`accuracy`), ``eps`` outside (0, 1).

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import nll
        >>> probs = np.array([[0.5, 0.5], [0.25, 0.75]])
        >>> round(nll(probs, [0, 1]), 4)  # (log 2 + log 4/3) / 2
        0.4904
    """
    e = v._real("nll", "eps", eps)
    if not (0.0 < e < 1.0):
        raise InvalidValueError(v.message("nll", "eps", "a number in (0, 1)", eps))
    p, labels = _scored("nll", probs, y)
    picked = p[np.arange(p.shape[0]), labels]
    return float(-np.mean(np.log(np.clip(picked, e, 1.0))))


def brier(probs, y) -> float:
    """Multi-class Brier score: mean over samples of ``sum_k (p_k - onehot(y)_k)^2``.

    It lies in [0, 2]. For K = 2 it is twice the binary Brier score of the positive class
    (scikit-learn's ``brier_score_loss``).

    Args:
        probs: ``(N, K)`` class probabilities, or ``(T, N, K)`` MC samples (averaged over T).
        y: ``(N,)`` integer labels in ``[0, K)``.

    Returns:
        The Brier score, a float in [0, 2].

    Raises:
        TypeError: non-numeric ``probs`` or non-integer ``y``.
        ValueError: bad shapes or values (see :func:`accuracy`).

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import brier
        >>> probs = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> round(brier(probs, [0, 0]), 4)  # (0.01 + 0.01 + 0.64 + 0.64) / 2
        0.65
    """
    p, labels = _scored("brier", probs, y)
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), labels] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=-1)))


# --- calibration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reliability:
    """Per-bin statistics for a reliability diagram (equal-width confidence bins).

    Bin ``i`` holds confidences in ``(edges[i], edges[i + 1]]``; the first bin also holds 0.

    Attributes:
        edges: ``(bins + 1,)`` bin edges from 0 to 1.
        confidence: ``(bins,)`` mean confidence (max probability) per bin; NaN where empty.
        accuracy: ``(bins,)`` fraction of correct argmax predictions per bin; NaN where empty.
        count: ``(bins,)`` int64 number of samples per bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_b count_b / N * |accuracy_b - confidence_b|``."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def _reliability(where: str, probs, y, bins) -> Reliability:
    m = _bins(where, bins)
    p, labels = _scored(where, probs, y)
    conf = p.max(axis=-1)
    correct = (np.argmax(p, axis=-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, m + 1)
    # right-closed bins (lo, hi]: a confidence of exactly 1 lands in the last bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, m - 1)
    count = np.bincount(idx, minlength=m).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=m) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=m) / count
    empty = count == 0
    mean_conf[empty] = np.nan
    mean_acc[empty] = np.nan
    return Reliability(edges=edges, confidence=mean_conf, accuracy=mean_acc, count=count)


def reliability(probs, y, bins: int = 15) -> Reliability:
    """Per-bin confidence, accuracy and count for a reliability diagram.

    Confidence is the maximum class probability and a prediction is correct when its argmax
    (first one on ties) is the label. Bins are equal-width on [0, 1], right-closed.

    Args:
        probs: ``(N, K)`` class probabilities, or ``(T, N, K)`` MC samples (averaged over T).
        y: ``(N,)`` integer labels in ``[0, K)``.
        bins: number of equal-width bins, a positive integer. Default 15.

    Returns:
        A :class:`Reliability` with ``edges``, ``confidence``, ``accuracy`` and ``count``
        (empty bins: NaN confidence and accuracy, count 0) and an ``ece`` property.

    Raises:
        TypeError: non-numeric ``probs``, non-integer ``y`` or ``bins``.
        ValueError: bad shapes or values (see :func:`accuracy`), ``bins < 1``.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import reliability
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
        >>> r = reliability(probs, [0, 1, 1, 0], bins=2)
        >>> r.count.tolist(), np.round(r.confidence, 4).tolist(), np.round(r.accuracy, 4).tolist()
        ([1, 3], [0.5, 0.8], [1.0, 0.6667])
    """
    return _reliability("reliability", probs, y, bins)


def ece(probs, y, bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|`` over the non-empty bins, where
    confidence is the maximum class probability and accuracy that of the argmax. Bins are
    right-closed, as in :func:`reliability`.

    Args:
        probs: ``(N, K)`` class probabilities, or ``(T, N, K)`` MC samples (averaged over T).
        y: ``(N,)`` integer labels in ``[0, K)``.
        bins: number of equal-width bins, a positive integer. Default 15.

    Returns:
        The ECE, a float in [0, 1].

    Raises:
        TypeError: non-numeric ``probs``, non-integer ``y`` or ``bins``.
        ValueError: bad shapes or values (see :func:`accuracy`), ``bins < 1``.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import ece
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
        >>> round(ece(probs, [0, 1, 1, 0], bins=2), 4)  # 1/4 * 0.5 + 3/4 * |2/3 - 0.8|
        0.225
    """
    return _reliability("ece", probs, y, bins).ece


# --- MC dropout uncertainty ---------------------------------------------------------------


def predictive_entropy(mean_probs) -> np.ndarray:
    """Per-sample entropy (nats) of the predictive mean, ``-sum_k p_k log p_k`` (0 log 0 = 0).

    Args:
        mean_probs: ``(N, K)`` predictive mean probabilities, or ``(T, N, K)`` MC samples
            (averaged over T first).

    Returns:
        ``(N,)`` float64 entropies in ``[0, log K]``.

    Raises:
        TypeError: non-numeric input.
        ValueError: bad shape, values outside [0, 1], rows not summing to 1.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import predictive_entropy
        >>> np.round(predictive_entropy(np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])), 4)
        array([1.3863, 0.    ])
    """
    p = _probs("predictive_entropy", mean_probs, ndims=(2, 3), name="mean_probs")
    if p.ndim == 3:
        p = p.mean(axis=0)
    return np.maximum(_entropy(p), 0.0)


def expected_entropy(samples) -> np.ndarray:
    """Per-sample mean over the T passes of each pass's entropy (nats), the aleatoric part.

    Args:
        samples: ``(T, N, K)`` class probabilities from T stochastic forward passes.

    Returns:
        ``(N,)`` float64 values in ``[0, log K]``.

    Raises:
        TypeError: non-numeric input.
        ValueError: not 3-D, values outside [0, 1], rows not summing to 1.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import expected_entropy
        >>> samples = np.array([[[0.5, 0.5]], [[1.0, 0.0]]])  # T=2, N=1, K=2
        >>> np.round(expected_entropy(samples), 4)  # (log 2 + 0) / 2
        array([0.3466])
    """
    s = _probs("expected_entropy", samples, ndims=(3,), name="samples")
    return np.maximum(_entropy(s).mean(axis=0), 0.0)


def mutual_information(samples) -> np.ndarray:
    """Per-sample mutual information between prediction and weights (BALD), the epistemic part.

    ``MI = predictive_entropy(mean over T) - expected_entropy``, clipped to
    ``[0, predictive_entropy]`` against floating-point error, so ``0 <= MI <= entropy``.

    Args:
        samples: ``(T, N, K)`` class probabilities from T stochastic forward passes.

    Returns:
        ``(N,)`` float64 values in ``[0, log K]``.

    Raises:
        TypeError: non-numeric input.
        ValueError: not 3-D, values outside [0, 1], rows not summing to 1.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import mutual_information
        >>> samples = np.array([[[1.0, 0.0], [0.7, 0.3]], [[0.0, 1.0], [0.7, 0.3]]])
        >>> np.round(mutual_information(samples), 4)  # passes disagree / agree
        array([0.6931, 0.    ])
    """
    s = _probs("mutual_information", samples, ndims=(3,), name="samples")
    total = np.maximum(_entropy(s.mean(axis=0)), 0.0)
    expected = _entropy(s).mean(axis=0)
    return np.clip(total - expected, 0.0, total)


def variation_ratio(samples) -> np.ndarray:
    """Per-sample ``1 - (passes voting for the modal argmax class) / T``.

    Args:
        samples: ``(T, N, K)`` class probabilities from T stochastic forward passes.

    Returns:
        ``(N,)`` float64 values in ``[0, 1 - 1/K]``; 0 when every pass agrees.

    Raises:
        TypeError: non-numeric input.
        ValueError: not 3-D, values outside [0, 1], rows not summing to 1.

    Example:
        >>> import numpy as np
        >>> from droplab.metrics import variation_ratio
        >>> eye = np.eye(3)
        >>> samples = eye[[[0, 0], [0, 1], [1, 1], [2, 1]]]  # T=4, N=2: votes 0,0,1,2 and 0,1,1,1
        >>> variation_ratio(samples).tolist()
        [0.5, 0.25]
    """
    s = _probs("variation_ratio", samples, ndims=(3,), name="samples")
    t, n, k = s.shape
    votes = np.argmax(s, axis=-1) + k * np.arange(n)  # (T, N), offset per sample
    counts = np.bincount(votes.ravel(), minlength=n * k).reshape(n, k)
    return 1.0 - counts.max(axis=-1) / t


# --- out-of-distribution detection --------------------------------------------------------


def _scores(where: str, name: str, value) -> np.ndarray:
    arr = v.finite_array(where, name, value)
    if arr.ndim != 1:
        raise InvalidValueError(v.message(where, name, "a 1-D array of scores", f"array of shape {arr.shape}"))
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    return arr


def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve for telling out-of-distribution from in-distribution samples.

    Out-of-distribution samples are the positives: a higher score should mean "more OOD"
    (e.g. entropy or mutual information). Computed as the Mann-Whitney U statistic,
    ``P(score_out > score_in) + P(score_out == score_in) / 2``, from average ranks in
    O(n log n), without scikit-learn.

    Args:
        scores_in: ``(N_in,)`` scores of in-distribution samples.
        scores_out: ``(N_out,)`` scores of out-of-distribution samples.

    Returns:
        The AUROC, a float in [0, 1]: 1 for perfect separation, 0.5 for none.

    Raises:
        TypeError: non-numeric scores.
        ValueError: scores that are empty, not 1-D, or not finite.

    Example:
        >>> from droplab.metrics import auroc
        >>> round(auroc([0.1, 0.2, 0.3], [0.3, 0.4]), 4)  # 5 pairs won, 1 tied, out of 6
        0.9167
    """
    s_in = _scores("auroc", "scores_in", scores_in)
    s_out = _scores("auroc", "scores_out", scores_out)
    n_in, n_out = s_in.size, s_out.size
    both = np.concatenate([s_in, s_out])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # average 1-based rank of each distinct value: the midpoint of its run in sorted order
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum_out = float(np.sum(avg_rank[inverse.ravel()[n_in:]]))
    u = rank_sum_out - n_out * (n_out + 1) / 2.0
    return u / (n_in * n_out)
