"""Recurrent layers on ``(N, T, F)``: ``RNN`` (tanh, Elman) and ``GRU``, with full BPTT.

Both share one loop. The input projection ``x @ W_ih + b_ih`` of every time step is one
matrix product before the loop, and its gradient one product after it; only the
hidden-to-hidden step, written next to its backward in each class, runs per time step.
"""

from __future__ import annotations

import numpy as np

from droplab import _rng, _validate
from droplab.nn.module import Module, Parameter

__all__ = ["RNN", "GRU"]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def _orthogonal(g: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random ``n x n`` orthogonal matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(g.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class _Recurrent(Module):
    """The loop, the checks and the initialisation shared by ``RNN`` and ``GRU``.

    A subclass sets ``_gates`` (1 for RNN, 3 for GRU) and implements ``_step(gx, h)`` ->
    ``(h_new, cache)`` and ``_step_back(dh, h, cache)`` -> ``(dgx, dh_prev)`` (adding its
    hidden-to-hidden gradients itself), where ``gx`` is the step's input projection.
    """

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, return_sequences: bool = False,
                 seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__()
        where = type(self).__name__
        self.input_size = _validate.positive_int(where, "input_size", input_size)
        self.hidden_size = _validate.positive_int(where, "hidden_size", hidden_size)
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise TypeError(_validate.message(where, "return_sequences", "True or False", return_sequences))
        self.return_sequences = bool(return_sequences)
        self.dtype = _validate.float_dtype(where, dtype)
        self._config = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                            return_sequences=self.return_sequences, dtype=self.dtype.name)
        f, h, k = self.input_size, self.hidden_size, self._gates
        self.weight_ih = Parameter(np.zeros((f, k * h), self.dtype), "weight_ih")
        self.weight_hh = Parameter(np.zeros((h, k * h), self.dtype), "weight_hh")
        self.bias_ih = Parameter(np.zeros(k * h, self.dtype), "bias_ih")
        self._more_parameters()
        self._x: np.ndarray | None = None
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        # Glorot-uniform input weights and orthogonal recurrent weights, per gate: the
        # orthogonal W_hh neither shrinks nor grows the state at initialisation.
        g = _rng.generator(ss)
        f, h = self.input_size, self.hidden_size
        limit = np.sqrt(6.0 / (f + h))
        for k in range(self._gates):
            cols = slice(k * h, (k + 1) * h)
            self.weight_ih.value[:, cols] = g.uniform(-limit, limit, (f, h))
            self.weight_hh.value[:, cols] = _orthogonal(g, h)
        for p in self._parameters()[2:]:
            p.value[...] = 0

    def _more_parameters(self) -> None:
        """Create the parameters a subclass adds to ``weight_ih``, ``weight_hh``, ``bias_ih``."""

    def _parameters(self) -> list[Parameter]:
        return [self.weight_ih, self.weight_hh, self.bias_ih]

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] == 0:
            raise ValueError(
                f"{type(self).__name__}: input must have shape (N, T, {self.input_size}) with T >= 1; "
                f"got shape {x.shape}."
            )
        n, steps, _ = x.shape
        gx = x @ self.weight_ih.value
        gx += self.bias_ih.value
        hs = np.empty((n, steps, self.hidden_size), self.dtype)
        h = np.zeros((n, self.hidden_size), self.dtype)
        caches = []
        for t in range(steps):
            h, cache = self._step(gx[:, t], h)
            hs[:, t] = h
            caches.append(cache)
        self._x, self._hs, self._caches = x, hs, caches
        return hs if self.return_sequences else hs[:, -1].copy()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise self._no_forward()
        dy = np.asarray(dy, dtype=self.dtype)
        x, hs = self._x, self._hs
        n, steps, _ = x.shape
        dgx = np.empty((n, steps, self._gates * self.hidden_size), self.dtype)
        dh = np.zeros((n, self.hidden_size), self.dtype)
        zero = np.zeros_like(dh)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh = dh + dy[:, t]
            elif t == steps - 1:
                dh = dh + dy
            h_prev = hs[:, t - 1] if t else zero
            dgx[:, t], dh = self._step_back(dh, h_prev, self._caches[t])
        flat = dgx.reshape(n * steps, dgx.shape[2])  # explicit sizes: a 0-row batch has none to infer
        self.weight_ih.grad += x.reshape(n * steps, self.input_size).T @ flat
        self.bias_ih.grad += flat.sum(axis=0)
        return dgx @ self.weight_ih.value.T

    def _step(self, gx, h):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_back(self, dh, h_prev, cache):  # pragma: no cover - abstract
        raise NotImplementedError


class RNN(_Recurrent):
    """Elman recurrent layer with tanh: ``h_t = tanh(x_t @ W_ih + b + h_{t-1} @ W_hh)``, ``h_0 = 0``.

    Backward is full backpropagation through time over the whole sequence. The same in
    training and eval (put a ``LockedDropout`` before or after it for dropout on sequences).

    Args:
        input_size (int): ``F``.
        hidden_size (int): ``H``.
        return_sequences (bool): return every ``h_t`` ``(N, T, H)`` instead of the last
            state ``(N, H)``. Default False.
        seed (int | np.random.Generator | None): seed of the initial weights (Glorot-uniform
            ``W_ih``, orthogonal ``W_hh``, zero bias). Default None.
        dtype: float32 (default) or float64.

    Shape:
        input ``(N, T, F)``; output ``(N, H)``, or ``(N, T, H)`` with ``return_sequences``.
        ``weight_ih`` ``(F, H)``, ``weight_hh`` ``(H, H)``, ``bias_ih`` ``(H,)``.

    Raises:
        ValueError / TypeError: for a non-positive size, a dtype other than
            float32/float64, or an input that is not ``(N, T, input_size)``.

    Example:
        >>> import numpy as np
        >>> rnn = RNN(3, 5, seed=0)
        >>> rnn.forward(np.zeros((2, 7, 3), np.float32)).shape
        (2, 5)
        >>> RNN(3, 5, return_sequences=True, seed=0).forward(np.zeros((2, 7, 3), np.float32)).shape
        (2, 7, 5)

    Reference:
        Elman, "Finding Structure in Time", Cognitive Science 1990.
    """

    _gates = 1

    def _step(self, gx, h):
        h_new = np.tanh(gx + h @ self.weight_hh.value)
        return h_new, h_new

    def _step_back(self, dh, h_prev, h_new):
        da = dh * (1 - h_new * h_new)
        self.weight_hh.grad += h_prev.T @ da
        return da, da @ self.weight_hh.value.T


class GRU(_Recurrent):
    """Gated recurrent unit, in PyTorch's formulation, with full BPTT; ``h_0 = 0``::

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
        h' = (1 - z) * n + z * h

    The same in training and eval.

    Args:
        input_size (int): ``F``.
        hidden_size (int): ``H``.
        return_sequences (bool): return every ``h_t`` ``(N, T, H)`` instead of the last
            state ``(N, H)``. Default False.
        seed (int | np.random.Generator | None): seed of the initial weights (Glorot-uniform
            input weights, orthogonal recurrent weights, zero biases). Default None.
        dtype: float32 (default) or float64.

    Shape:
        input ``(N, T, F)``; output ``(N, H)``, or ``(N, T, H)`` with ``return_sequences``.
        ``weight_ih`` ``(F, 3H)`` and ``weight_hh`` ``(H, 3H)`` hold the r, z, n blocks in
        that order; ``bias_ih`` and ``bias_hh`` ``(3H,)``.

    Raises:
        ValueError / TypeError: as for :class:`RNN`.

    Example:
        >>> import numpy as np
        >>> gru = GRU(3, 4, seed=0)
        >>> gru.forward(np.zeros((2, 6, 3), np.float32)).shape
        (2, 4)
        >>> [p.value.shape for p in gru.parameters()]
        [(3, 12), (4, 12), (12,), (12,)]

    Reference:
        Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", EMNLP 2014.
    """

    _gates = 3

    def _more_parameters(self) -> None:
        self.bias_hh = Parameter(np.zeros(3 * self.hidden_size, self.dtype), "bias_hh")

    def _parameters(self) -> list[Parameter]:
        return [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]

    def _step(self, gx, h):
        hd = self.hidden_size
        gh = h @ self.weight_hh.value
        gh += self.bias_hh.value
        r = _sigmoid(gx[:, :hd] + gh[:, :hd])
        z = _sigmoid(gx[:, hd:2 * hd] + gh[:, hd:2 * hd])
        hn = gh[:, 2 * hd:]
        n = np.tanh(gx[:, 2 * hd:] + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new, (r, z, n, hn)

    def _step_back(self, dh, h_prev, cache):
        r, z, n, hn = cache
        hd = self.hidden_size
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h_prev - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dgx = np.concatenate([dr, dz, dn], axis=1)
        dgh = dgx.copy()
        dgh[:, 2 * hd:] *= r
        self.weight_hh.grad += h_prev.T @ dgh
        self.bias_hh.grad += dgh.sum(axis=0)
        return dgx, dh * z + dgh @ self.weight_hh.value.T
