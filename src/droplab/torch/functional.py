"""Functional forms of the ``droplab.torch`` family: one call, one mask.

Each takes ``seed`` (int | numpy Generator | None, turned into a Philox key exactly as the
NumPy engine does) and ``counter`` (which mask of that key to draw, default 0), so the same
``(seed, counter)`` gives the same mask as a module or a NumPy layer seeded alike.

``p`` is always the probability that an element is zeroed (not the keep probability).

Example:
    >>> import torch
    >>> from droplab.torch import functional as F
    >>> x = torch.ones(4, 1000)
    >>> y = F.dropout(x, 0.25, seed=0)
    >>> y.shape, sorted(set(y.unique().tolist()))
    (torch.Size([4, 1000]), [0.0, 1.3333333730697632])
    >>> bool(torch.equal(y, F.dropout(x, 0.25, seed=0)))
    True
"""

from __future__ import annotations

import torch

from droplab import _validate, kernels
from droplab.torch import _core

__all__ = [
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "gaussian_dropout",
    "drop_path", "locked_dropout", "drop_block2d", "noise_shape",
]


def check_input(where: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(_validate.message(where, "x", "a torch.Tensor", type(x).__name__))
    if not x.is_floating_point():
        raise TypeError(_validate.message(where, "x", "a floating-point tensor", f"tensor of dtype {x.dtype}",
                                          "Convert it with x.float()."))
    return x


def noise_shape(where: str, shape: tuple[int, ...], axes) -> tuple[int, ...]:
    """``shape`` with 1 along the shared ``axes`` (None: the full shape)."""
    if axes is None:
        return tuple(shape)
    ndim = len(shape)
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(_validate.message(where, "axes", f"axes of the {ndim}-D input (shape {tuple(shape)})",
                                           axes))
    shared = {a % ndim for a in axes}
    return tuple(1 if i in shared else n for i, n in enumerate(shape))


def channel_shape(where: str, shape: tuple[int, ...], spatial: int) -> tuple[int, ...]:
    """Noise shape of channel dropout: ``(N, C, 1, ...)`` batched, ``(C, 1, ...)`` unbatched."""
    ndim = len(shape)
    if ndim not in (spatial + 1, spatial + 2):
        names = "L" if spatial == 1 else ", ".join("DHW"[3 - spatial:])
        raise ValueError(_validate.message(
            where, "x", f"a {spatial + 2}-D (N, C, {names}) or {spatial + 1}-D unbatched (C, {names}) tensor",
            f"tensor of shape {tuple(shape)}"))
    return tuple(shape[: ndim - spatial]) + (1,) * spatial


def _bernoulli(x, p, key, counter, nshape, inverted=True):
    if inverted:
        scale = kernels.keep_scale(p)
    else:
        scale = 0.0 if p == 1.0 else 1.0
    return _core.NoiseFunction.apply(x, _core.Bernoulli(p, key, counter, scale, nshape))


def _start(where, x, p, seed, counter, *, allow_one=True):
    x = check_input(where, x)
    p = _validate.probability(where, "p", p, allow_one=allow_one)
    counter = _validate.nonnegative_int(where, "counter", counter)
    return x, p, counter


def dropout(x, p: float = 0.5, training: bool = True, *, axes=None, inverted: bool = True, seed=None,
            counter: int = 0) -> torch.Tensor:
    """Dropout; ``axes`` share one mask value (see :class:`droplab.torch.Dropout`).

    ``p``: probability that an element is zeroed (not the keep probability).
    """
    where = "dropout"
    x, p, counter = _start(where, x, p, seed, counter)
    axes = _validate.axes(where, axes)
    key = _core.make_key(where, seed, None)
    if not training or p == 0:
        return x if inverted or training else x * (1.0 - p)
    return _bernoulli(x, p, key, counter, noise_shape(where, tuple(x.shape), axes), inverted)


def _channel(spatial):
    def fn(x, p: float = 0.5, training: bool = True, *, seed=None, counter: int = 0) -> torch.Tensor:
        where = f"dropout{spatial}d"
        x, p, counter = _start(where, x, p, seed, counter)
        nshape = channel_shape(where, tuple(x.shape), spatial)
        key = _core.make_key(where, seed, None)
        if not training or p == 0:
            return x
        return _bernoulli(x, p, key, counter, nshape)

    fn.__name__ = fn.__qualname__ = f"dropout{spatial}d"
    fn.__doc__ = (f"Channel dropout on ``(N, C, ...)`` with {spatial} spatial dims (or unbatched ``(C, ...)``).\n\n"
                  "``p``: probability that a whole channel is zeroed (not the keep probability).")
    return fn


dropout1d, dropout2d, dropout3d = _channel(1), _channel(2), _channel(3)


def alpha_dropout(x, p: float = 0.5, training: bool = True, *, seed=None, counter: int = 0) -> torch.Tensor:
    """Alpha dropout (keeps SELU's zero mean and unit variance); ``p``: drop probability."""
    where = "alpha_dropout"
    x, p, counter = _start(where, x, p, seed, counter)
    key = _core.make_key(where, seed, None)
    if not training or p == 0:
        return x
    return _core.NoiseFunction.apply(x, _core.Alpha(p, key, counter, tuple(x.shape)))


def gaussian_dropout(x, p: float = 0.5, training: bool = True, *, seed=None, counter: int = 0) -> torch.Tensor:
    """Multiplicative ``N(1, p/(1-p))`` noise; ``p`` in [0, 1) is the matching drop probability."""
    where = "gaussian_dropout"
    x, p, counter = _start(where, x, p, seed, counter, allow_one=False)
    key = _core.make_key(where, seed, None)
    if not training or p == 0:
        return x
    return _core.NoiseFunction.apply(x, _core.Gaussian(p, key, counter, tuple(x.shape)))


def drop_path(x, p: float = 0.5, training: bool = True, *, seed=None, counter: int = 0) -> torch.Tensor:
    """Stochastic depth: drops whole samples (rows) with probability ``p``, survivors scaled by 1/(1-p)."""
    where = "drop_path"
    x, p, counter = _start(where, x, p, seed, counter)
    key = _core.make_key(where, seed, None)
    if not training or p == 0 or x.ndim == 0:
        return x
    return _bernoulli(x, p, key, counter, (x.shape[0],) + (1,) * (x.ndim - 1))


def locked_dropout(x, p: float = 0.5, training: bool = True, *, batch_first: bool = True, seed=None,
                   counter: int = 0) -> torch.Tensor:
    """One mask per sequence shared over time on ``(N, T, F)`` (``(T, N, F)`` if not batch_first)."""
    where = "locked_dropout"
    x, p, counter = _start(where, x, p, seed, counter)
    if x.ndim != 3:
        layout = "(N, T, F)" if batch_first else "(T, N, F)"
        raise ValueError(_validate.message(where, "x", f"a 3-D {layout} tensor", f"tensor of shape {tuple(x.shape)}"))
    key = _core.make_key(where, seed, None)
    if not training or p == 0:
        return x
    nshape = (x.shape[0], 1, x.shape[2]) if batch_first else (1, x.shape[1], x.shape[2])
    return _bernoulli(x, p, key, counter, nshape)


def drop_block2d(x, p: float = 0.1, block_size: int = 7, training: bool = True, *, shared_channels: bool = False,
                 seed=None, counter: int = 0) -> torch.Tensor:
    """DropBlock on ``(N, C, H, W)``: drops ``block_size`` squares so that a fraction ``p`` is dropped."""
    where = "drop_block2d"
    x, p, counter = _start(where, x, p, seed, counter)
    block_size = _validate.positive_int(where, "block_size", block_size)
    key = _core.make_key(where, seed, None)
    return block_noise(where, x, p, block_size, shared_channels, key, counter, training)


def block_noise(where, x, p, block_size, shared_channels, key, counter, training):
    if x.ndim not in (3, 4):
        raise ValueError(_validate.message(where, "x", "a 4-D (N, C, H, W) or 3-D unbatched (C, H, W) tensor",
                                           f"tensor of shape {tuple(x.shape)}"))
    if not training or p == 0 or x.numel() == 0:
        return x
    xb = x if x.ndim == 4 else x.unsqueeze(0)
    n, c, h, w = xb.shape
    b = min(block_size, h, w)
    gamma = _core.dropblock_gamma(p, h, w, b)
    spec = _core.BlockMask(gamma, key, counter, b, (n, 1 if shared_channels else c, h, w))
    y = _core.NoiseFunction.apply(xb, spec)
    return y if x.ndim == 4 else y.squeeze(0)
