"""MC dropout's result and statistics, once for both engines.

:func:`droplab.nn.mc_predict` (NumPy) and :func:`droplab.torch.mc_predict` (PyTorch) run the
stochastic passes their own way and hand each chunk of passes, as float64 NumPy arrays, to the
same :class:`Stats`; :func:`result` turns the statistics into the same :class:`MCResult`, whose
arrays ``droplab.torch`` then moves onto the input's device as tensors (:meth:`MCResult.map`).

Reference:
    Gal and Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty
    in Deep Learning", ICML 2016. Gal, "Uncertainty in Deep Learning", PhD thesis, 2016,
    section 3.3 (predictive entropy, mutual information / BALD, variation ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from droplab import _validate
from droplab.errors import InvalidTypeError, ResourceLimitError
from droplab.metrics import _entropy

#: The largest number of passes ``T`` accepted (10,000), by both engines' mc_predict. MC
#: dropout's estimates settle within tens to hundreds of passes (Gal 2016 uses 10-1000); a
#: larger T only costs time.
MAX_SAMPLES = 10_000


def check_samples(where: str, samples, keep_samples) -> int:
    """``samples`` as an int in [1, MAX_SAMPLES] and ``keep_samples`` True, False or None, or
    the one-line error; returns T."""
    T = _validate.positive_int(where, "samples", samples)
    if T > MAX_SAMPLES:
        raise ResourceLimitError(_validate.message(
            where, "samples", f"an integer in [1, {MAX_SAMPLES}]", samples,
            "Estimates settle within hundreds of passes; average several calls for more."))
    if keep_samples is not None and not isinstance(keep_samples, (bool, np.bool_)):
        raise InvalidTypeError(_validate.message(where, "keep_samples", "True, False or None", keep_samples))
    return T

__all__ = ["MCResult", "Stats", "result", "deterministic"]

_ARRAYS = ("samples", "mean", "std", "entropy", "expected_entropy", "mutual_information", "variation_ratio",
           "variance")


@dataclass(frozen=True, repr=False)
class MCResult:
    """What ``mc_predict`` returns: the T passes and the statistics over them (NumPy arrays in
    :mod:`droplab.nn`, torch tensors on the input's device in :mod:`droplab.torch`).

    For classification the outputs are probabilities (softmax of the logits, or a sigmoid
    expanded to two classes ``[1 - q, q]``). For regression they are the raw outputs.

    Attributes:
        samples: ``(T, N, K)`` per-pass outputs (float64), or None with ``keep_samples=False``.
        mean: ``(N, K)`` predictive mean over the passes.
        std: ``(N, K)`` standard deviation over the passes (population, ``ddof=0``).
        entropy: ``(N,)`` predictive entropy (nats) of ``mean`` (classification; else None).
        expected_entropy: ``(N,)`` mean over the passes of each pass's entropy, the
            aleatoric part (classification; else None).
        mutual_information: ``(N,)`` ``entropy - expected_entropy`` (BALD), the epistemic
            part, in ``[0, entropy]`` (classification; else None).
        variation_ratio: ``(N,)`` ``1 - (passes voting for the modal class) / T``
            (classification; else None).
        variance: ``(N, K)`` predictive variance: ``std**2`` plus ``1 / tau`` for
            regression when ``tau`` was given (Gal and Ghahramani 2016, eq. 8).
        kind: ``"classification"`` or ``"regression"``.
        T: the number of passes.
        stacked: True when the passes ran as stacked forwards; False when a dropout layer
            shares its noise across the batch axis and the passes ran one after another.
    """

    samples: Any
    mean: Any
    std: Any
    entropy: Any
    expected_entropy: Any
    mutual_information: Any
    variation_ratio: Any
    variance: Any
    kind: str
    T: int
    stacked: bool

    @property
    def prediction(self):
        """``(N,)`` argmax class of ``mean`` (classification), or ``mean`` (regression)."""
        return self.mean.argmax(-1) if self.kind == "classification" else self.mean

    def map(self, fn: Callable) -> MCResult:
        """The same result with ``fn`` applied to every array (None stays None)."""
        return replace(self, **{k: None if getattr(self, k) is None else fn(getattr(self, k)) for k in _ARRAYS})

    def __repr__(self) -> str:
        n, k = tuple(self.mean.shape)[0], tuple(self.mean.shape)[-1] if len(self.mean.shape) > 1 else 1
        parts = [f"kind={self.kind!r}", f"T={self.T}", f"N={n}", f"K={k}", f"stacked={self.stacked}"]
        for name in ("std", "entropy", "mutual_information"):
            v = getattr(self, name)
            if v is not None and n:
                parts.append(f"mean {name}={float(v.mean()):.4g}")
        kept = "kept" if self.samples is not None else "not kept"
        return f"MCResult({', '.join(parts)}, samples {kept})"


class Stats:
    """Running mean / M2 (Chan et al.), entropies and votes over passes, for one input chunk."""

    def __init__(self, n: int, k: int, classification: bool) -> None:
        self.count = 0
        self.mean = np.zeros((n, k))
        self.m2 = np.zeros((n, k))
        self.classification = classification
        if classification:
            self.ent_mean = np.zeros(n)
            self.votes = np.zeros((n, k), dtype=np.int64)

    def add(self, s: np.ndarray) -> None:
        """Fold in passes ``s`` of shape ``(t, n, k)``, float64."""
        t = s.shape[0]
        # shifted by the first pass: passes that agree give their value and M2 = 0 exactly
        mean_b = s[0] + (s - s[0]).mean(axis=0)
        m2_b = ((s - mean_b) ** 2).sum(axis=0)
        if self.count == 0:
            self.mean, self.m2 = mean_b, m2_b
        else:
            total = self.count + t
            delta = mean_b - self.mean
            self.mean = self.mean + delta * (t / total)
            self.m2 = self.m2 + m2_b + delta**2 * (self.count * t / total)
        self.count += t
        if self.classification:
            ent = _entropy(s)
            ent_mean = ent[0] + (ent - ent[0]).mean(axis=0)
            self.ent_mean += (ent_mean - self.ent_mean) * (t / (self.count))
            n, k = s.shape[1:]
            picks = s.argmax(axis=-1) + k * np.arange(n)
            self.votes += np.bincount(picks.ravel(), minlength=n * k).reshape(n, k)


def outputs(out: np.ndarray, t: int, n: int, classification: bool) -> np.ndarray:
    """Passes as ``(t, n, K)`` float64, a one-column sigmoid output expanded to ``[1 - q, q]``."""
    out = np.asarray(out).reshape(t, n, -1).astype(np.float64)
    if classification and out.shape[-1] == 1:
        out = np.concatenate([1.0 - out, out], axis=-1)
    return out


def result(parts: list[dict], T: int, classification: bool, tau: float | None, keep_samples: bool,
           stacked: bool) -> MCResult:
    """The :class:`MCResult` of chunks ``{"stats": Stats, "samples": (T, n, K) | None}``."""
    mean = np.concatenate([q["stats"].mean for q in parts])
    var = np.concatenate([q["stats"].m2 for q in parts]) / T
    var = np.maximum(var, 0.0)
    std = np.sqrt(var)
    entropy = expected = mi = vr = None
    if classification:
        entropy = np.maximum(_entropy(mean), 0.0)
        expected = np.maximum(np.concatenate([q["stats"].ent_mean for q in parts]), 0.0)
        mi = np.clip(entropy - expected, 0.0, entropy)
        votes = np.concatenate([q["stats"].votes for q in parts])
        vr = 1.0 - votes.max(axis=-1) / T
        variance = var
    else:
        variance = var + (1.0 / tau if tau is not None else 0.0)
    return MCResult(
        samples=np.concatenate([q["samples"] for q in parts], axis=1) if keep_samples else None,
        mean=mean, std=std, entropy=entropy, expected_entropy=expected, mutual_information=mi,
        variation_ratio=vr, variance=variance, kind="classification" if classification else "regression",
        T=T, stacked=stacked)


def deterministic(out: np.ndarray, T: int, classification: bool, keep_samples: bool | None, tau: float | None,
                  budget: int) -> MCResult:
    """The result when no layer samples: ``T`` equal passes, each exactly ``out`` (``(N, K)``
    after :func:`outputs`); ``std``, ``mutual_information`` and ``variation_ratio`` exactly 0."""
    n, k = out.shape
    if keep_samples is None:
        keep_samples = T * n * k * 8 <= budget
    zeros = np.zeros((n, k))
    entropy = expected = mi = vr = None
    if classification:
        entropy = np.maximum(_entropy(out), 0.0)
        expected = entropy.copy()
        mi = np.zeros(n)
        vr = np.zeros(n)
    variance = zeros if classification or tau is None else zeros + 1.0 / tau
    return MCResult(
        samples=np.broadcast_to(out, (T, n, k)).copy() if keep_samples else None,
        mean=out, std=zeros.copy(), entropy=entropy, expected_entropy=expected, mutual_information=mi,
        variation_ratio=vr, variance=variance, kind="classification" if classification else "regression",
        T=T, stacked=True)

