"""Losses: ``loss(pred, target) -> float`` (mean over samples); ``loss.backward() -> dpred``.

Each loss also says how to turn the model's raw output into a prediction
(``output(pred)``: probabilities for classifiers) and whether it is a classification loss,
so ``fit``/``predict``/``evaluate`` can report accuracy and probabilities.
"""

from __future__ import annotations

from droplab.errors import InvalidValueError
import numpy as np

from droplab import _validate, kernels

__all__ = ["Loss", "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MSELoss", "softmax"]


def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


class Loss:
    """Base of the losses: a callable that remembers what its ``backward`` needs."""

    classification = False

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """Gradient of the last loss value with respect to ``pred``."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}: backward() was called before the loss was computed.")
        return self._grad

    def output(self, pred: np.ndarray) -> np.ndarray:
        """The model's prediction from its raw output (identity unless overridden)."""
        return pred

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy in one numerically stable step, on logits.

    ``loss = mean_i( logsumexp(z_i) - z_i[y_i] )``, and the fused gradient is
    ``(softmax(z) - onehot(y)) / N`` (exact, no division by a probability).

    Args (of the call):
        pred: logits ``(N, K)``.
        target: integer labels ``(N,)`` in ``[0, K)`` or one-hot / soft targets ``(N, K)``.

    Example:
        >>> import numpy as np
        >>> loss = SoftmaxCrossEntropy()
        >>> round(loss(np.zeros((2, 4)), np.array([0, 3])), 6) == round(float(np.log(4)), 6)
        True
        >>> loss.backward().shape
        (2, 4)
    """

    classification = True

    def forward(self, pred, target) -> float:
        z = np.asarray(pred)
        if z.ndim != 2 or z.shape[1] < 2:
            raise InvalidValueError(_validate.message("SoftmaxCrossEntropy", "pred", "logits of shape (N, K) with K >= 2",
                                               f"array of shape {z.shape}"))
        n, k = z.shape
        t = np.asarray(target)
        if t.ndim == 1:
            t = _validate.labels("SoftmaxCrossEntropy", "target", t, k)
            if t.shape[0] != n:
                raise InvalidValueError(_validate.message("SoftmaxCrossEntropy", "target", f"{n} labels (one per row of pred)",
                                                   f"{t.shape[0]} labels"))
            fused = self._fused(z, t)
            if fused is not None:
                return fused[0]
        elif t.shape != z.shape:
            raise InvalidValueError(_validate.message("SoftmaxCrossEntropy", "target",
                                               f"labels of shape ({n},) or targets of shape {z.shape}",
                                               f"array of shape {t.shape}"))
        shifted = z - z.max(axis=1, keepdims=True)
        logsum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logsum
        probs = np.exp(logp)
        if t.ndim == 1:
            value = -logp[np.arange(n), t].mean()
            probs[np.arange(n), t] -= 1
        else:
            value = -(t * logp).sum(axis=1).mean()
            probs -= t
        probs /= n
        self._grad = probs.astype(z.dtype, copy=False)
        return float(value)

    def _forward_labels(self, pred: np.ndarray, labels: np.ndarray) -> tuple[float, int | None]:
        """fit's call, on labels it has checked (``int64``, one per row, in ``[0, K)``):
        ``(loss, rows whose largest logit is the label)``, the count None where not taken.
        The loss and gradient are ``forward``'s, bit for bit; only the label check is left out."""
        z = pred
        if isinstance(z, np.ndarray) and z.ndim == 2 and labels.shape == z.shape[:1]:
            fused = self._fused(z, labels)
            if fused is not None:
                return fused
        return self.forward(pred, labels), None

    def _fused(self, z: np.ndarray, t: np.ndarray) -> tuple[float, int] | None:
        """The label path in the compiled kernels of :mod:`droplab.nn._loss_kernels` (sets the
        gradient): ``(loss, correct rows)``; None, computing nothing, where they do not apply
        (the NumPy backend, another dtype or layout, no rows, a label outside ``[0, K)``)."""
        dt = z.dtype
        if (dt.type not in (np.float32, np.float64) or not z.flags.c_contiguous or not z.shape[0] or z.shape[1] < 2
                or t.dtype != np.int64 or kernels.backend() != "numba"):
            return None
        from droplab.nn import _loss_kernels as lk

        n = z.shape[0]
        zero = dt.type(0)
        shifted, pred = lk.shift_rows(z)
        s = lk.row_sums(np.exp(shifted), zero)  # NumPy's exp and log: the C library's round differently
        np.log(s, out=s)
        lk.sub_rows(shifted, s)
        probs = np.exp(shifted)
        total, correct = lk.finish(shifted, probs, t, pred, zero, dt.type(1), dt.type(n))
        if correct < 0:
            return None
        self._grad = probs
        # NumPy's mean: the sum over n, an intp, in float64, cast back to the dtype
        return -float(dt.type(float(total) / n)), correct

    def output(self, pred):
        return softmax(np.asarray(pred))


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, averaged over every output.

    Args:
        from_logits (bool): ``pred`` are logits (fused with a sigmoid, numerically stable;
            default) or probabilities in (0, 1), clipped to ``[eps, 1 - eps]``.
        eps (float): the clip for probabilities. Default 1e-7.

    Example:
        >>> import numpy as np
        >>> round(BinaryCrossEntropy()(np.zeros((3, 1)), np.ones((3, 1))), 6) == round(float(np.log(2)), 6)
        True
    """

    classification = True

    def __init__(self, *, from_logits: bool = True, eps: float = 1e-7) -> None:
        super().__init__()
        self.from_logits = bool(from_logits)
        self.eps = _validate.positive_float("BinaryCrossEntropy", "eps", eps)

    def forward(self, pred, target) -> float:
        z = np.asarray(pred)
        t = np.asarray(target, dtype=z.dtype if z.dtype.kind == "f" else np.float64)
        if t.ndim == z.ndim - 1 and z.shape[-1] == 1:
            t = t[..., None]
        if t.shape != z.shape:
            raise InvalidValueError(_validate.message("BinaryCrossEntropy", "target", f"an array of shape {z.shape}",
                                               f"array of shape {t.shape}"))
        if self.from_logits:
            # log(1 + exp(-|z|)) + max(z, 0) - z t: no overflow for any z
            value = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
            e = np.exp(-np.abs(z))
            s = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
            grad = (s - t) / z.size
        else:
            p = np.clip(z, self.eps, 1 - self.eps)
            value = -(t * np.log(p) + (1 - t) * np.log(1 - p))
            grad = (p - t) / (p * (1 - p)) / z.size
            grad = np.where((z > self.eps) & (z < 1 - self.eps), grad, 0)
        self._grad = grad.astype(z.dtype, copy=False)
        return float(value.mean())

    def output(self, pred):
        z = np.asarray(pred)
        if not self.from_logits:
            return z
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


class MSELoss(Loss):
    """Mean squared error over every element: ``mean((pred - target)**2)``.

    Example:
        >>> import numpy as np
        >>> MSELoss()(np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]]))
        2.5
    """

    def forward(self, pred, target) -> float:
        z = np.asarray(pred)
        t = np.asarray(target, dtype=z.dtype)
        if t.ndim == z.ndim - 1 and z.shape[-1] == 1:
            t = t[..., None]
        if t.shape != z.shape:
            raise InvalidValueError(_validate.message("MSELoss", "target", f"an array of shape {z.shape}",
                                               f"array of shape {t.shape}"))
        d = z - t
        self._grad = (2.0 / z.size) * d
        return float((d * d).mean())
