"""Recurrent layers on ``(N, T, F)``: ``RNN`` (tanh, Elman) and ``GRU``, with full BPTT, in one
or both directions.

Both share one loop. The input projection ``x @ W_ih + b_ih`` of every time step (and of both
directions) is one matrix product before the loop, and its gradient one product after it;
only the hidden-to-hidden step, written next to its backward in each class, runs per time
step. A bidirectional layer runs its two directions in the same loop: step ``t`` is time
``t`` forward and time ``T - 1 - t`` backward, stacked on a leading direction axis, so each
step is one batched product for both and the Python cost per step does not double.
"""

from __future__ import annotations

from droplab.errors import InvalidTypeError, InvalidValueError
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


def _flag(where: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(_validate.message(where, name, "True or False", value))
    return bool(value)


def _t(a: np.ndarray) -> np.ndarray:
    """The transpose of each matrix in a stack ``(D, a, b)``."""
    return a.transpose(0, 2, 1)


class _Recurrent(Module):
    """The loop, the checks and the initialisation shared by ``RNN`` and ``GRU``.

    A subclass sets ``_gates`` (1 for RNN, 3 for GRU) and ``_hidden`` (the names of its
    hidden-to-hidden parameters, ``weight_hh`` first), and implements ``_step(gx, h, w)`` ->
    ``(h_new, cache)`` and ``_step_back(dh, h_prev, cache, w, dw)`` -> ``(dgx, dh_prev)``.
    Every array there has a leading direction axis ``D`` (1, or 2 when bidirectional): ``gx``
    ``(D, N, gates*H)`` is the step's input projection, ``h`` ``(D, N, H)``, ``w`` the
    hidden parameters stacked over directions (biases as ``(D, 1, gates*H)``), and ``dw``
    arrays of the same shapes that ``_step_back`` adds their gradients into.
    """

    _gates = 1
    _hidden: tuple[str, ...] = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int, *, return_sequences: bool = False,
                 bidirectional: bool = False, seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__()
        where = type(self).__name__
        self.input_size = _validate.positive_int(where, "input_size", input_size)
        self.hidden_size = _validate.positive_int(where, "hidden_size", hidden_size)
        self.return_sequences = _flag(where, "return_sequences", return_sequences)
        self.bidirectional = _flag(where, "bidirectional", bidirectional)
        self.dtype = _validate.float_dtype(where, dtype)
        self._config = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                            return_sequences=self.return_sequences, bidirectional=self.bidirectional,
                            dtype=self.dtype.name)
        f, h, k = self.input_size, self.hidden_size, self._gates * self.hidden_size
        _validate.parameter_budget(where, "input_size, hidden_size", len(self._suffixes()) * k * (f + h + 2))
        shapes = {"weight_ih": (f, k), "weight_hh": (h, k), "bias_ih": (k,), "bias_hh": (k,)}
        for suffix in self._suffixes():
            for name in self._names():
                setattr(self, name + suffix, Parameter(np.zeros(shapes[name], self.dtype), name + suffix))
        self._x: np.ndarray | None = None
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    def _names(self) -> tuple[str, ...]:
        """One direction's parameter names, in ``parameters()`` order."""
        return ("weight_ih", self._hidden[0], "bias_ih", *self._hidden[1:])

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _direction(self, suffix: str) -> dict[str, Parameter]:
        return {name: getattr(self, name + suffix) for name in self._names()}

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        # Glorot-uniform input weights and orthogonal recurrent weights, per gate: the
        # orthogonal W_hh neither shrinks nor grows the state at initialisation.
        g = _rng.generator(ss)
        f, h = self.input_size, self.hidden_size
        limit = np.sqrt(6.0 / (f + h))
        for suffix in self._suffixes():
            params = self._direction(suffix)
            for k in range(self._gates):
                cols = slice(k * h, (k + 1) * h)
                params["weight_ih"].value[:, cols] = g.uniform(-limit, limit, (f, h))
                params["weight_hh"].value[:, cols] = _orthogonal(g, h)
            for name, p in params.items():
                if name.startswith("bias"):
                    p.value[...] = 0

    def _parameters(self) -> list[Parameter]:
        return [getattr(self, name + suffix) for suffix in self._suffixes() for name in self._names()]

    def _stacked(self, name: str) -> np.ndarray:
        """Parameter ``name`` of every direction, stacked ``(D, ...)`` (a view when D = 1)."""
        values = [getattr(self, name + suffix).value for suffix in self._suffixes()]
        return values[0][None] if len(values) == 1 else np.stack(values)

    def _input_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``W_ih`` and ``b_ih`` of all directions side by side, ``(F, D*k)`` and ``(D*k,)``."""
        if not self.bidirectional:
            return self.weight_ih.value, self.bias_ih.value
        return (np.concatenate([self.weight_ih.value, self.weight_ih_reverse.value], axis=1),
                np.concatenate([self.bias_ih.value, self.bias_ih_reverse.value]))

    def _hidden_weights(self) -> list[np.ndarray]:
        w = [self._stacked(name) for name in self._hidden]
        return w[:1] + [b[:, None, :] for b in w[1:]]  # biases broadcast over the batch

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] == 0:
            raise InvalidValueError(
                f"{type(self).__name__}: input must have shape (N, T, {self.input_size}) with T >= 1; "
                f"got shape {x.shape}."
            )
        n, steps, f = x.shape
        d, hd = (2 if self.bidirectional else 1), self.hidden_size
        k = self._gates * hd
        # time-major inside, so each step reads a contiguous (N, k) block
        xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(steps * n, f)
        w_ih, b_ih = self._input_weights()
        g = xt @ w_ih
        g += b_ih
        g = g.reshape(steps, n, d * k)
        if d == 1:
            gxs = g.reshape(steps, 1, n, k)
        else:  # step t reads time t forward and time T-1-t backward
            gxs = np.empty((steps, 2, n, k), self.dtype)
            gxs[:, 0] = g[:, :, :k]
            gxs[:, 1] = g[::-1, :, k:]
        w = self._hidden_weights()
        hs = np.empty((steps, d, n, hd), self.dtype)
        h = np.zeros((d, n, hd), self.dtype)
        caches = []
        for t in range(steps):
            h, cache = self._step(gxs[t], h, w)
            hs[t] = h
            caches.append(cache)
        self._x, self._hs, self._caches = xt, hs, caches
        if not self.return_sequences:  # each direction's final state: time T-1 forward, time 0 backward
            return np.ascontiguousarray(hs[-1].transpose(1, 0, 2)).reshape(n, d * hd)
        y = np.empty((n, steps, d * hd), self.dtype)
        y[:, :, :hd] = hs[:, 0].transpose(1, 0, 2)
        if d == 2:
            y[:, :, hd:] = hs[::-1, 1].transpose(1, 0, 2)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise self._no_forward()
        dy = np.asarray(dy, dtype=self.dtype)
        xt, hs = self._x, self._hs
        steps, d, n, hd = hs.shape
        k = self._gates * hd
        if self.return_sequences:  # in step order, like hs
            dyt = dy.reshape(n, steps, d, hd).transpose(1, 2, 0, 3)
            dys = dyt if d == 1 else np.stack([dyt[:, 0], dyt[::-1, 1]], axis=1)
        else:
            dlast = dy.reshape(n, d, hd).transpose(1, 0, 2)
        w = self._hidden_weights()
        dw = [np.zeros_like(a) for a in w]
        dgxs = np.empty((steps, d, n, k), self.dtype)
        dh = np.zeros((d, n, hd), self.dtype)
        zero = np.zeros_like(dh)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh = dh + dys[t]
            elif t == steps - 1:
                dh = dh + dlast
            h_prev = hs[t - 1] if t else zero
            dgxs[t], dh = self._step_back(dh, h_prev, self._caches[t], w, dw)
        for j, name in enumerate(self._hidden):
            for i, suffix in enumerate(self._suffixes()):
                p = getattr(self, name + suffix)
                p.grad += dw[j][i].reshape(p.grad.shape)
        if d == 1:
            flat = dgxs.reshape(steps * n, k)  # explicit sizes: a 0-row batch has none to infer
        else:  # back to time order, both directions side by side, as _input_weights lays them out
            both = np.empty((steps, n, 2 * k), self.dtype)
            both[:, :, :k] = dgxs[:, 0]
            both[:, :, k:] = dgxs[::-1, 1]
            flat = both.reshape(steps * n, 2 * k)
        dw_ih = xt.T @ flat
        db_ih = flat.sum(axis=0)
        for i, suffix in enumerate(self._suffixes()):
            getattr(self, "weight_ih" + suffix).grad += dw_ih[:, i * k:(i + 1) * k]
            getattr(self, "bias_ih" + suffix).grad += db_ih[i * k:(i + 1) * k]
        dx = flat @ self._input_weights()[0].T
        return np.ascontiguousarray(dx.reshape(steps, n, self.input_size).transpose(1, 0, 2))

    def _step(self, gx, h, w):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_back(self, dh, h_prev, cache, w, dw):  # pragma: no cover - abstract
        raise NotImplementedError


class RNN(_Recurrent):
    """Elman recurrent layer with tanh: ``h_t = tanh(x_t @ W_ih + b + h_{t-1} @ W_hh)``, ``h_0 = 0``.

    Backward is full backpropagation through time over the whole sequence. The same in
    training and eval (put a ``LockedDropout`` before or after it for dropout on sequences).
    With ``bidirectional=True`` a second set of weights reads the sequence from its end, and
    the two directions' states are concatenated, forward first, as in PyTorch.

    Args:
        input_size (int): ``F``.
        hidden_size (int): ``H``, per direction.
        return_sequences (bool): return every step's state ``(N, T, D*H)`` (PyTorch's
            ``output`` with ``batch_first=True``) instead of the final state ``(N, D*H)``.
            Default False.
        bidirectional (bool): also run a reverse direction (``D = 2``); its final state is the
            one after reading time 0, so the final output is PyTorch's ``h_n`` with the two
            directions side by side, not ``output[:, -1]``. Default False (``D = 1``).
        seed (int | np.random.Generator | None): seed of the initial weights (Glorot-uniform
            ``W_ih``, orthogonal ``W_hh``, zero bias). Default None.
        dtype: float32 (default) or float64. Integer and bool input is computed in ``dtype``.

    Shape:
        input ``(N, T, F)``; output ``(N, D*H)``, or ``(N, T, D*H)`` with ``return_sequences``.
        ``weight_ih`` ``(F, H)``, ``weight_hh`` ``(H, H)``, ``bias_ih`` ``(H,)``; with
        ``bidirectional``, the same again as ``*_reverse``, after them in ``parameters()``.

    Raises:
        ValueError / TypeError: for a non-positive size, a non-bool flag, a dtype other than
            float32/float64, or an input that is not ``(N, T, input_size)`` with ``T >= 1``.

    Example:
        >>> import numpy as np
        >>> rnn = RNN(3, 5, seed=0)
        >>> rnn.forward(np.zeros((2, 7, 3), np.float32)).shape
        (2, 5)
        >>> RNN(3, 5, return_sequences=True, seed=0).forward(np.zeros((2, 7, 3), np.float32)).shape
        (2, 7, 5)
        >>> RNN(3, 5, bidirectional=True, seed=0).forward(np.zeros((2, 7, 3), np.float32)).shape
        (2, 10)

    Reference:
        Elman, "Finding Structure in Time", Cognitive Science 1990; Schuster & Paliwal,
        "Bidirectional Recurrent Neural Networks", IEEE Trans. Signal Processing 1997.
    """

    _gates = 1
    _hidden = ("weight_hh",)

    def _step(self, gx, h, w):
        h_new = np.tanh(gx + np.matmul(h, w[0]))
        return h_new, h_new

    def _step_back(self, dh, h_prev, h_new, w, dw):
        da = dh * (1 - h_new * h_new)
        dw[0] += np.matmul(_t(h_prev), da)
        return da, np.matmul(da, _t(w[0]))


class GRU(_Recurrent):
    """Gated recurrent unit, in PyTorch's formulation, with full BPTT; ``h_0 = 0``::

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
        h' = (1 - z) * n + z * h

    The same in training and eval. With ``bidirectional=True`` a second set of weights reads
    the sequence from its end, and the two directions' states are concatenated, forward
    first, as in PyTorch's ``GRU(bidirectional=True, batch_first=True)``.

    Args:
        input_size (int): ``F``.
        hidden_size (int): ``H``, per direction.
        return_sequences (bool): return every step's state ``(N, T, D*H)`` (PyTorch's
            ``output`` with ``batch_first=True``) instead of the final state ``(N, D*H)``.
            A head on every step's output is ``Flatten()`` then ``Dense(T*D*H, classes)``.
            Default False.
        bidirectional (bool): also run a reverse direction (``D = 2``); its final state is the
            one after reading time 0, so the final output is PyTorch's ``h_n`` with the two
            directions side by side, not ``output[:, -1]``. Default False (``D = 1``).
        seed (int | np.random.Generator | None): seed of the initial weights (Glorot-uniform
            input weights, orthogonal recurrent weights, zero biases). Default None.
        dtype: float32 (default) or float64. Integer and bool input is computed in ``dtype``.

    Shape:
        input ``(N, T, F)``; output ``(N, D*H)``, or ``(N, T, D*H)`` with ``return_sequences``.
        ``weight_ih`` ``(F, 3H)`` and ``weight_hh`` ``(H, 3H)`` hold the r, z, n blocks in
        that order (PyTorch's ``weight_ih_l0.T``); ``bias_ih`` and ``bias_hh`` ``(3H,)``; with
        ``bidirectional``, the same again as ``*_reverse``, after them in ``parameters()``.

    Raises:
        ValueError / TypeError: as for :class:`RNN`.

    Example:
        >>> import numpy as np
        >>> gru = GRU(3, 4, seed=0)
        >>> gru.forward(np.zeros((2, 6, 3), np.float32)).shape
        (2, 4)
        >>> [p.value.shape for p in gru.parameters()]
        [(3, 12), (4, 12), (12,), (12,)]
        >>> from droplab import nn  # MNIST-1D's GRU: 40 steps, 6 units each way, a head on every step
        >>> model = nn.Sequential(GRU(1, 6, bidirectional=True, return_sequences=True), nn.Flatten(),
        ...                       nn.Dense(40 * 12, 10), seed=0)
        >>> model.forward(np.zeros((5, 40, 1), np.float32)).shape
        (5, 10)

    Reference:
        Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", EMNLP 2014;
        Schuster & Paliwal, "Bidirectional Recurrent Neural Networks", IEEE Trans. Signal
        Processing 1997; Greydanus, "Scaling down Deep Learning" (MNIST-1D), arXiv:2011.14439.
    """

    _gates = 3
    _hidden = ("weight_hh", "bias_hh")

    def _step(self, gx, h, w):
        hd = self.hidden_size
        w_hh, b_hh = w
        gh = np.matmul(h, w_hh)
        gh += b_hh
        r = _sigmoid(gx[..., :hd] + gh[..., :hd])
        z = _sigmoid(gx[..., hd:2 * hd] + gh[..., hd:2 * hd])
        hn = gh[..., 2 * hd:]
        n = np.tanh(gx[..., 2 * hd:] + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new, (r, z, n, hn)

    def _step_back(self, dh, h_prev, cache, w, dw):
        r, z, n, hn = cache
        hd = self.hidden_size
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h_prev - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dgx = np.concatenate([dr, dz, dn], axis=-1)
        dgh = dgx.copy()
        dgh[..., 2 * hd:] *= r
        dw[0] += np.matmul(_t(h_prev), dgh)
        dw[1] += dgh.sum(axis=1, keepdims=True)
        return dgx, dh * z + np.matmul(dgh, _t(w[0]))
