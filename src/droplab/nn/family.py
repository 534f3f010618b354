"""The dropout family: each variant is :class:`~droplab.nn.Dropout` with one hook changed.

===================  ==========================================================================
variant              what it changes in the base
===================  ==========================================================================
Dropout1d/2d/3d      ``noise_shape``: ``(N, C, 1, ...)``, one value per channel
DropPath             ``noise_shape``: ``(N, 1, ..., 1)`` (row) or ``(1, ..., 1)`` (batch)
LockedDropout        ``noise_shape``: ``(N, 1, F)``, shared over time
GaussianDropout      ``_sample``: ``1 + sqrt(p/(1-p)) * N(0, 1)`` instead of Bernoulli
AlphaDropout         ``_sample`` / ``_shift``: affine, dropped units go to SELU's saturation
DropBlock2d          ``noise_shape`` + ``_sample``: Bernoulli seeds grown into blocks
DropConnect          ``noise_shape`` = the weight's shape; forward masks ``W`` of a Dense
ConcreteDropout      ``_sample``: a relaxed Bernoulli whose ``p`` is a learned parameter
===================  ==========================================================================

Every variant takes ``p``, the probability that an element is zeroed (not the keep
probability), and ``seed``; draws its noise as a pure function of ``(key, counter)``; and
regenerates that noise in ``backward`` instead of storing it.
"""

from __future__ import annotations

import math

import numpy as np

from droplab import _rng, _validate, kernels
from droplab.nn import _noise
from droplab.nn.activations import SELU_ALPHA, SELU_SCALE
from droplab.nn.dropout import Dropout
from droplab.nn.layers import Dense
from droplab.nn.module import Module, Parameter

__all__ = [
    "Dropout1d", "Dropout2d", "Dropout3d", "DropPath", "LockedDropout", "GaussianDropout",
    "AlphaDropout", "DropBlock2d", "DropConnect", "ConcreteDropout",
]


def _rank_error(layer: Dropout, shape: tuple[int, ...], layout: str, hint: str | None = None) -> ValueError:
    allowed = "an array of rank >= 1" if "*" in layout else f"a {layout.count(',') + 1}-D array"
    return ValueError(_validate.message(type(layer).__name__, "x", f"{allowed} {layout}",
                                        f"array of shape {shape}", hint))


class _Variant(Dropout):
    """A variant's constructor: ``p`` and ``seed`` only (always inverted, no ``axes``)."""

    def __init__(self, p: float = 0.5, *, seed: _rng.Seed = None) -> None:
        super().__init__(p, seed=seed)
        self._config = {"p": self.p}


# -- variants that change only the mask's shape ----------------------------------------------------
class _ChannelDropout(_Variant):
    layout = ""
    hint = ""

    def noise_shape(self, shape):
        rank = self.layout.count(",") + 1
        if len(shape) != rank:
            raise _rank_error(self, shape, self.layout, self.hint)
        return shape[:2] + (1,) * (rank - 2)


class Dropout1d(_ChannelDropout):
    """Channel dropout on ``(N, C, L)``: zeroes whole channels with probability ``p``.

    ``p``: probability that a channel is zeroed (not the keep probability). Training:
    ``y[n, c, :] = x[n, c, :] * m[n, c] / (1 - p)``, ``m ~ Bernoulli(1 - p)`` per (sample,
    channel). Eval: identity. Gradient: the same mask on ``dy``. Any other rank is an error,
    never silently reinterpreted.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, C, L)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; an input that is not 3-D.

    Example:
        >>> import numpy as np
        >>> y = Dropout1d(0.5, seed=0).forward(np.ones((4, 16, 10), np.float32))
        >>> y.shape, bool(((y == 0).all(axis=2) | (y != 0).all(axis=2)).all())
        ((4, 16, 10), True)

    Reference:
        Tompson, Goroshin, Jain, LeCun and Bregler, "Efficient Object Localization Using
        Convolutional Networks", CVPR 2015 (spatial dropout).
    """

    layout = "(N, C, L)"
    hint = "Use Dropout2d for (N, C, H, W); add the channel axis with x[:, None] for (N, L) data."


class Dropout2d(_ChannelDropout):
    """Channel (spatial) dropout on ``(N, C, H, W)``: zeroes whole feature maps.

    ``p``: probability that a channel is zeroed (not the keep probability). Training:
    ``y[n, c] = x[n, c] * m[n, c] / (1 - p)``; eval: identity; gradient: the same mask on
    ``dy``. A 3-D input raises instead of being read as ``(C, H, W)`` without a batch (the
    PyTorch trap).

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, C, H, W)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; an input that is not 4-D.

    Example:
        >>> import numpy as np
        >>> y = Dropout2d(0.5, seed=0).forward(np.ones((4, 16, 3, 3), np.float32))
        >>> y.shape, bool(((y == 0).all(axis=(2, 3)) | (y != 0).all(axis=(2, 3))).all())
        ((4, 16, 3, 3), True)

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional Networks", CVPR 2015.
    """

    layout = "(N, C, H, W)"
    hint = "Use Dropout1d for (N, C, L); add a batch axis with x[None] for one (C, H, W) image."


class Dropout3d(_ChannelDropout):
    """Channel dropout on ``(N, C, D, H, W)``: zeroes whole volumes.

    ``p``: probability that a channel is zeroed (not the keep probability). Training:
    ``y[n, c] = x[n, c] * m[n, c] / (1 - p)``; eval: identity; gradient: the same mask on ``dy``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, C, D, H, W)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; an input that is not 5-D.

    Example:
        >>> import numpy as np
        >>> Dropout3d(0.5, seed=0).forward(np.ones((2, 4, 2, 3, 3), np.float32)).shape
        (2, 4, 2, 3, 3)

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional Networks", CVPR 2015.
    """

    layout = "(N, C, D, H, W)"
    hint = "Add a batch axis with x[None] for one (C, D, H, W) volume."


class DropPath(_Variant):
    """Stochastic depth: zeroes a whole sample (``mode="row"``) or the whole batch (``"batch"``).

    ``p``: probability that a sample's path is dropped (not the keep probability). Put it at
    the end of a residual branch, ``Residual(Sequential(..., DropPath(p)))``, so that a dropped
    sample passes through the block as the identity. Training: ``y[n] = x[n] * m[n] / (1 - p)``
    (row) or ``y = x * m / (1 - p)`` with one ``m`` for the batch; eval: identity; gradient:
    the same mask on ``dy``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        mode (str): ``"row"`` (one draw per sample, timm's ``drop_path``) or ``"batch"`` (one
            draw for the whole batch, the original stochastic depth). Default "row".
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, *)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; an unknown ``mode``; a 0-D input.

    Example:
        >>> import numpy as np
        >>> y = DropPath(0.5, seed=0).forward(np.ones((8, 3, 2), np.float32))
        >>> y.shape, bool(((y == 0).all(axis=(1, 2)) | (y == 2).all(axis=(1, 2))).all())
        ((8, 3, 2), True)

    Reference:
        Huang, Sun, Liu, Sedra and Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016
        (its ``p_l`` is the survival probability: droplab's ``p`` is ``1 - p_l``); Larsson,
        Maire and Shakhnarovich, "FractalNet", ICLR 2017 (drop-path).
    """

    def __init__(self, p: float = 0.5, *, mode: str = "row", seed: _rng.Seed = None) -> None:
        super().__init__(p, seed=seed)
        self.mode = _validate.one_of("DropPath", "mode", mode, ("row", "batch"))
        self._config["mode"] = self.mode

    def noise_shape(self, shape):
        if len(shape) < 1:
            raise _rank_error(self, shape, "(N, *)")
        first = shape[0] if self.mode == "row" else 1
        return (first,) + (1,) * (len(shape) - 1)


class LockedDropout(_Variant):
    """Locked (variational) dropout on sequences: one mask per sequence, shared over time.

    ``p``: probability that a feature is zeroed (not the keep probability). Training:
    ``y[n, t, f] = x[n, t, f] * m[n, f] / (1 - p)`` for every ``t``; eval: identity; gradient:
    the same mask on ``dy``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, T, F)`` (batch first) -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; an input that is not 3-D.

    Example:
        >>> import numpy as np
        >>> y = LockedDropout(0.5, seed=0).forward(np.ones((4, 7, 5), np.float32))
        >>> y.shape, bool(((y == 0) == (y[:, :1] == 0)).all())
        ((4, 7, 5), True)

    Reference:
        Gal and Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
        Neural Networks", NeurIPS 2016; Merity, Keskar and Socher, "Regularizing and
        Optimizing LSTM Language Models", ICLR 2018 (``LockedDropout``).
    """

    def noise_shape(self, shape):
        if len(shape) != 3:
            raise _rank_error(self, shape, "(N, T, F)", "Sequences are batch first: (batch, time, features).")
        return (shape[0], 1, shape[2])


# -- variants that change the noise's distribution -------------------------------------------------
class GaussianDropout(_Variant):
    """Multiplicative Gaussian noise ``N(1, p/(1-p))``: Bernoulli dropout's mean and variance.

    ``p``: the drop probability whose inverted-dropout noise variance ``p/(1-p)`` is matched
    (not the keep probability). Training: ``y = x * (1 + sqrt(p/(1-p)) * z)``, ``z ~ N(0, 1)``
    per element, drawn counter-based (NumPy's Philox keyed by the layer's key and call counter,
    see :mod:`droplab.nn._noise`), so ``E[y] = x``. Eval:
    identity. Gradient: ``dy * (1 + sqrt(p/(1-p)) * z)`` with the same ``z``. ``p = 1`` is
    rejected: its variance is infinite (Keras divides by zero there).

    Args:
        p (float): in [0, 1). Default 0.5.
        seed (int | np.random.Generator | None): seed of the noise.

    Shape:
        ``(*)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1).

    Example:
        >>> import numpy as np
        >>> y = GaussianDropout(0.5, seed=0).forward(np.ones(100_000))
        >>> y.shape, bool(abs(y.mean() - 1) < 0.05), bool(abs(y.var() - 1) < 0.05)
        ((100000,), True, True)

    Reference:
        Srivastava et al., "Dropout", JMLR 2014, section 10 (their ``p`` is the retain
        probability: the noise variance ``(1-p)/p`` there is ``p/(1-p)`` here).
    """

    _allow_p_one = False
    _p_one_hint = "The noise variance p/(1-p) is infinite at p = 1."

    def _sample(self, shape, dtype, counter):
        sigma = math.sqrt(self.p / (1.0 - self.p))
        return (1.0 + sigma * _noise.normal(shape, self._key, counter)).astype(dtype)


#: alpha' = -scale * alpha, the value SELU saturates to for x -> -inf (Klambauer et al. 2017)
ALPHA_PRIME = -SELU_SCALE * SELU_ALPHA


class AlphaDropout(_Variant):
    """Alpha dropout: keeps zero mean and unit variance of SELU activations.

    ``p``: probability that a unit is dropped (not the keep probability). Training: with
    ``q = 1 - p_eff`` and ``alpha' = -scale * alpha`` (SELU's negative saturation),
    ``y = a * (x * m + alpha' * (1 - m)) + b``, ``m ~ Bernoulli(q)``,
    ``a = (q + alpha'^2 q (1 - q))^(-1/2)``, ``b = -a (1 - q) alpha'``, so an input of mean 0
    and variance 1 keeps them. Eval: identity. Gradient: ``dy * a * m``. ``p = 1`` is
    rejected (``a`` is infinite there), and the mask's ``p`` is capped at ``1 - 2**-32`` so that
    a ``p`` whose 32-bit threshold rounds to ``2**32`` keeps a finite ``a``.

    Args:
        p (float): in [0, 1). Default 0.5.
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(*)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal(200_000)
        >>> y = AlphaDropout(0.2, seed=0).forward(x)
        >>> bool(abs(y.mean()) < 0.02), bool(abs(y.var() - 1) < 0.02)
        (True, True)

    Reference:
        Klambauer, Unterthiner, Mayr and Hochreiter, "Self-Normalizing Neural Networks",
        NeurIPS 2017 (their ``q`` is the keep probability: ``q = 1 - p``).
    """

    _allow_p_one = False
    _p_one_hint = "Alpha dropout's affine correction a = (q + alpha'^2 q (1-q))^(-1/2) is infinite at p = 1."

    @property
    def _mask_p(self) -> float:
        return min(self.p, 1.0 - 1.0 / kernels.RESOLUTION)  # q >= 2**-32: a stays finite

    def coefficients(self) -> tuple[float, float]:
        """``(a, b)`` of the affine correction for the effective ``p``."""
        q = 1.0 - kernels.effective_p(self._mask_p)
        a = (q + ALPHA_PRIME**2 * q * (1.0 - q)) ** -0.5
        return a, -a * (1.0 - q) * ALPHA_PRIME

    def _sample(self, shape, dtype, counter):
        return kernels.mask_values(shape, self._mask_p, self._key, counter, self.coefficients()[0], dtype)

    def _shift(self, shape, dtype, counter):
        a, b = self.coefficients()
        keep = kernels.keep_mask(shape, self._mask_p, self._key, counter)
        return np.where(keep, dtype.type(b), dtype.type(a * ALPHA_PRIME + b))


class DropBlock2d(_Variant):
    """DropBlock: drops contiguous ``block_size x block_size`` regions of feature maps.

    ``p``: the expected fraction of units dropped (not the keep probability). Training: block
    seeds are drawn ``Bernoulli(gamma)`` at the ``(H - b + 1) x (W - b + 1)`` positions where a
    whole block fits (top-left corners, so every block lies inside the map), each seed zeroes
    its block, and the result is renormalised by ``count / kept`` over the WHOLE batch tensor
    (the paper's Algorithm 1; a per-sample ratio would make each sample unbiased but noisier).
    Eval: identity. Gradient: ``dy`` times the same mask and factor.

    ``gamma``: the paper's ``gamma = p / b^2 * H W / ((H - b + 1)(W - b + 1))`` counts
    overlapping blocks twice, so the realised fraction is BELOW ``p`` (0.095 for p = 0.1,
    b = 3 on 8 x 8; 0.093 for b = 7 on 14 x 14). ``gamma="exact"`` (default) instead solves
    ``E[dropped fraction](gamma) = p`` by bisection, using the exact expectation
    ``mean over (i, j) of 1 - (1 - gamma)^c(i, j)``, ``c`` the number of seed positions whose
    block covers ``(i, j)`` (see :meth:`expected_drop_fraction`); ``gamma="paper"`` uses the
    formula. The 32-bit seed threshold moves the fraction by at most ``b^2 * 2**-33``.

    Args:
        p (float): drop fraction in [0, 1]. Default 0.1.
        block_size (int): side of a block, at most H and W. Default 3.
        shared_channels (bool): one block mask per sample shared by all channels (True) or one
            per (sample, channel) (False, default, the paper's choice).
        gamma (str): ``"exact"`` or ``"paper"``, see above. Default "exact".
        seed (int | np.random.Generator | None): seed of the masks.

    Shape:
        ``(N, C, H, W)`` -> same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; a non-positive ``block_size``; an input that is not
            4-D or smaller than a block; an unknown ``gamma``.

    Example:
        >>> import numpy as np
        >>> layer = DropBlock2d(0.2, 3, seed=0)
        >>> y = layer.forward(np.ones((64, 8, 8, 8), np.float32))
        >>> y.shape, round(layer.expected_drop_fraction(8, 8), 4)
        ((64, 8, 8, 8), 0.2)

    Reference:
        Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional networks",
        NeurIPS 2018 (their ``keep_prob`` is ``1 - p``).
    """

    def __init__(self, p: float = 0.1, block_size: int = 3, *, shared_channels: bool = False,
                 gamma: str = "exact", seed: _rng.Seed = None) -> None:
        super().__init__(p, seed=seed)
        self.block_size = _validate.positive_int("DropBlock2d", "block_size", block_size)
        self.shared_channels = bool(shared_channels)
        self.gamma_rule = _validate.one_of("DropBlock2d", "gamma", gamma, ("exact", "paper"))
        self._config.update(block_size=self.block_size, shared_channels=self.shared_channels, gamma=gamma)
        self._gammas: dict[tuple[float, int, int], float] = {}

    def noise_shape(self, shape):
        if len(shape) != 4:
            raise _rank_error(self, shape, "(N, C, H, W)", "Add a batch axis with x[None] for one image.")
        b = self.block_size
        if b > shape[2] or b > shape[3]:
            raise ValueError(_validate.message("DropBlock2d", "block_size", f"at most the map's H and W "
                                               f"({shape[2]}, {shape[3]})", b))
        return (shape[0], 1 if self.shared_channels else shape[1], shape[2], shape[3])

    def _coverage(self, H: int, W: int) -> np.ndarray:
        """``c[i, j]``: how many seed positions have a block covering ``(i, j)``."""
        b = self.block_size
        i, j = np.arange(H), np.arange(W)
        ch = np.minimum(i, H - b) - np.maximum(0, i - b + 1) + 1
        cw = np.minimum(j, W - b) - np.maximum(0, j - b + 1) + 1
        return np.outer(ch, cw)

    def expected_drop_fraction(self, H: int, W: int, gamma: float | None = None) -> float:
        """The exact expected dropped fraction on an ``H x W`` map for seed rate ``gamma``
        (default: the rate this layer draws, as its 32-bit threshold realises it)."""
        g = kernels.effective_p(self.gamma(H, W)) if gamma is None else gamma
        return float(np.mean(1.0 - (1.0 - g) ** self._coverage(H, W)))

    def gamma(self, H: int, W: int) -> float:
        """The seed probability for an ``H x W`` map (paper formula or exact solve, see above)."""
        key = (self.p, H, W)
        if key not in self._gammas:
            b = self.block_size
            g = self.p / b**2 * (H * W) / ((H - b + 1) * (W - b + 1))
            if self.p == 1.0:
                g = 1.0  # every seed position: the blocks then cover the whole map
            elif self.gamma_rule == "exact" and self.p > 0:
                lo, hi = 0.0, 1.0  # the expectation rises monotonically from 0 to 1
                for _ in range(60):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if self.expected_drop_fraction(H, W, mid) < self.p else (lo, mid)
                g = 0.5 * (lo + hi)
            self._gammas[key] = min(g, 1.0)
        return self._gammas[key]

    def _sample(self, shape, dtype, counter):
        n, c, H, W = shape
        b = self.block_size
        seeds = ~kernels.keep_mask((n, c, H - b + 1, W - b + 1), self.gamma(H, W), self._key, counter)
        rows = np.zeros((n, c, H, W - b + 1), bool)
        for k in range(b):  # grow each seed down, then right: a b x b block from its top-left corner
            rows[:, :, k:k + H - b + 1] |= seeds
        dropped = np.zeros(shape, bool)
        for k in range(b):
            dropped[..., k:k + W - b + 1] |= rows
        kept = dropped.size - int(np.count_nonzero(dropped))
        scale = dropped.size / kept if kept else 0.0
        return np.where(dropped, dtype.type(0), dtype.type(scale))


# -- variants around a layer ------------------------------------------------------------------------
class DropConnect(Dropout):
    """A Dense layer whose WEIGHTS are dropped: ``y = act(x @ (W * M / (1 - p)) + b)``.

    ``p``: probability that a weight is zeroed (not the keep probability). Training: the
    mask ``M`` is fresh per batch (``per="batch"``: one ``(in, out)`` mask shared by the rows,
    the cost of a Dense plus one mask) or per example (``per="example"``: an
    ``(N, in, out)`` mask, the paper's definition, costing ``N * in * out`` memory and a
    batched product, about ``N`` times a Dense). Gradient: ``dW += x^T du * M / (1 - p)``,
    ``dx = du (W * M / (1 - p))^T``, ``db += sum du`` (``du`` through ``act``), the mask
    regenerated from ``(key, counter)``.

    Inference: ``inference="scale"`` uses the mean weights, ``y = act(x @ W + b)`` (weight
    scaling, already folded into training by the inverted 1/(1-p)); ``"gaussian"`` is Wan et
    al.'s moment matching: the pre-activation ``u`` is treated as Gaussian with mean
    ``x @ W + b`` and variance ``p/(1-p) * (x**2 @ W**2)``, and ``y`` is the average of
    ``act(u)`` over ``samples`` draws (counter-based; each eval call advances ``counter``).
    Moment matching only differs from scaling through a non-linear ``act``, so pass the
    activation here rather than as a separate layer. Backward through the sampled Gaussian
    inference is not defined (RuntimeError).

    Args:
        in_features, out_features (int): the Dense's sizes.
        p (float): drop probability of each weight, in [0, 1]. Default 0.5.
        per (str): ``"batch"`` (default) or ``"example"``, see above.
        inference (str): ``"scale"`` (default) or ``"gaussian"``.
        samples (int): Gaussian inference draws. Default 100.
        activation (Module | None): applied after the affine map (e.g. ``nn.ReLU()``). Default None.
        init (str): the Dense's initialisation. Default "he".
        seed (int | np.random.Generator | None): seed of the weights and masks.
        dtype: float32 (default) or float64.

    Shape:
        ``(N, in_features)`` -> ``(N, out_features)``.

    Raises:
        ValueError / TypeError: bad sizes, ``p``, ``per``, ``inference``, ``samples``; a wrong
            input shape. RuntimeError: backward before forward or after a Gaussian inference.

    Example:
        >>> import numpy as np
        >>> layer = DropConnect(5, 3, p=0.5, seed=0)
        >>> x = np.ones((4, 5), np.float32)
        >>> layer.forward(x).shape
        (4, 3)
        >>> bool(np.allclose(layer.eval().forward(x), x @ layer.weight.value + layer.bias.value))
        True

    Reference:
        Wan, Zeiler, Zhang, LeCun and Fergus, "Regularization of Neural Networks using
        DropConnect", ICML 2013. Their ``p`` is the KEEP probability of a weight: droplab's
        ``p`` is ``1 - p_Wan``, and their inference variance ``p(1-p) (W*W)(v*v)`` on
        unscaled weights is ``p/(1-p) (x**2 @ W**2)`` on droplab's inverted ones.
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, *, per: str = "batch",
                 inference: str = "scale", samples: int = 100, activation: Module | None = None,
                 init: str = "he", seed: _rng.Seed = None, dtype=np.float32) -> None:
        where = "DropConnect"
        self.dense = Dense(in_features, out_features, init=init, seed=0, dtype=dtype)
        self.per = _validate.one_of(where, "per", per, ("batch", "example"))
        self.inference = _validate.one_of(where, "inference", inference, ("scale", "gaussian"))
        self.samples = _validate.positive_int(where, "samples", samples)
        if activation is not None and not isinstance(activation, Module):
            raise TypeError(_validate.message(where, "activation", "a droplab Module or None", activation))
        self.activation = activation
        super().__init__(p, seed=seed)
        self._config = {"in_features": in_features, "out_features": out_features, "per": self.per,
                        "inference": self.inference, "samples": self.samples, "init": init,
                        "dtype": self.dense.dtype.name}

    @property
    def weight(self) -> Parameter:
        return self.dense.weight

    @property
    def bias(self) -> Parameter:
        return self.dense.bias

    def children(self) -> list[Module]:
        return [self.dense] + ([self.activation] if self.activation is not None else [])

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        mask_ss, weight_ss = ss.spawn(2)
        super()._reseed(mask_ss)
        self.dense._reseed(weight_ss)

    def noise_shape(self, shape):
        if len(shape) != 2 or shape[1] != self.dense.in_features:
            raise _rank_error(self, shape, f"(N, {self.dense.in_features})")
        w = self.dense.weight.value.shape
        return w if self.per == "batch" else (shape[0],) + w

    def _act(self, u: np.ndarray) -> np.ndarray:
        return u if self.activation is None else self.activation.forward(u)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x).astype(self.dense.dtype, copy=False)
        shape = self.noise_shape(x.shape)
        W, b = self.dense.weight.value, self.dense.bias.value
        if self.training and self.p > 0:
            counter, self.counter = self.counter, self.counter + 1
            self._state = ("train", counter, shape, x)
            Wm = W * self._sample(shape, W.dtype, counter)
            u = x @ Wm if Wm.ndim == 2 else np.einsum("ni,nio->no", x, Wm)
            return self._act(u + b)
        mean = x @ W + b
        if self.training or self.inference == "scale" or self.p == 0:
            self._state = ("eval", x)
            return self._act(mean)
        counter, self.counter = self.counter, self.counter + 1
        self._state = ("gaussian",)
        sd = np.sqrt(self.p / (1 - self.p) * ((x * x) @ (W * W)))
        z = _noise.normal((self.samples,) + mean.shape, self._key, counter, mean.dtype)
        return np.mean([self._act(mean + sd * zs) for zs in z], axis=0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        if self._state[0] == "gaussian":
            raise RuntimeError("DropConnect: backward() through the sampled Gaussian inference is not defined; "
                               "use inference='scale' or train mode.")
        du = np.asarray(dy, self.dense.dtype)
        du = du if self.activation is None else self.activation.backward(du)
        W = self.dense.weight.value
        x = self._state[-1]
        self.dense.bias.grad += du.sum(axis=0)
        if self._state[0] == "eval":
            self.dense.weight.grad += x.T @ du
            return du @ W.T
        _, counter, shape, _ = self._state
        M = self._sample(shape, W.dtype, counter)
        if M.ndim == 2:
            self.dense.weight.grad += (x.T @ du) * M
            return du @ (W * M).T
        self.dense.weight.grad += np.einsum("ni,no,nio->io", x, du, M)
        return np.einsum("no,nio->ni", du, W * M)


class ConcreteDropout(Dropout):
    """Dropout on a layer's input whose rate ``p`` is learned (Concrete / relaxed Bernoulli).

    ``p``: probability that an input unit is zeroed (not the keep probability), now
    ``sigmoid(p_logit)`` with ``p_logit`` a :class:`Parameter`. Training:
    ``s = sigmoid((logit(p) + log u - log(1 - u)) / t)``, ``u ~ U(0, 1)`` per element (a
    relaxed drop indicator, ``t = temperature``), ``y = layer(x * (1 - s) / (1 - p))``. Eval:
    ``y = layer(x)`` (the dropout is the identity). Gradient: ``dx = g * (1 - s) / (1 - p)``
    with ``g`` the layer's input gradient, and
    ``dp_logit = sum(g * x~ * (p - s / t))`` with ``x~`` the dropped input, all regenerated
    from ``(key, counter)``.

    The regulariser (added to ``regularization_loss()``, its gradients added by ``backward``):
    ``weight_regularizer * sum(W**2) / (1 - p)`` over the layer's parameters, plus
    ``dropout_regularizer * D * (p log p + (1 - p) log(1 - p))``, ``D`` the input size. The
    second term is the negative entropy of Bernoulli(p), so minimising it pushes ``p``
    towards 0.5; the first pushes ``p`` down. With the paper's choices
    ``weight_regularizer = l**2 / N`` and ``dropout_regularizer = 2 / (tau N)``, both shrink as
    the data size ``N`` grows, the likelihood wins and the learned ``p`` falls (the paper's
    Figure 2): more data, less dropout.

    Args:
        layer (Module): the wrapped layer (e.g. ``Dense``); its input is dropped.
        weight_regularizer (float): >= 0. Default 1e-6.
        dropout_regularizer (float): >= 0. Default 1e-5.
        init_p (float): initial ``p`` in (0, 1). Default 0.1.
        temperature (float): > 0. Default 0.1 (the paper's).
        input_dim (int | None): ``D``; default ``layer.in_features``.
        seed (int | np.random.Generator | None): seed of the noise (and of the layer's
            initialisation when the layer was built without its own seed).

    Shape:
        the wrapped layer's.

    Raises:
        ValueError / TypeError: ``init_p`` not in (0, 1); negative regularisers; a
            non-positive temperature; no ``input_dim`` for a layer without ``in_features``.

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> layer = ConcreteDropout(nn.Dense(4, 2), init_p=0.2, seed=0)
        >>> layer.forward(np.ones((3, 4), np.float32)).shape, round(layer.p, 6)
        ((3, 2), 0.2)
        >>> [p.name for p in layer.parameters()]
        ['p_logit', 'weight', 'bias']

    Reference:
        Gal, Hron and Kendall, "Concrete Dropout", NeurIPS 2017 (``p`` there is already the
        drop probability).
    """

    def __init__(self, layer: Module, *, weight_regularizer: float = 1e-6, dropout_regularizer: float = 1e-5,
                 init_p: float = 0.1, temperature: float = 0.1, input_dim: int | None = None,
                 seed: _rng.Seed = None) -> None:
        where = "ConcreteDropout"
        if not isinstance(layer, Module):
            raise TypeError(_validate.message(where, "layer", "a droplab Module (e.g. nn.Dense)", layer))
        self.layer = layer
        self.weight_regularizer = _validate.nonnegative_float(where, "weight_regularizer", weight_regularizer)
        self.dropout_regularizer = _validate.nonnegative_float(where, "dropout_regularizer", dropout_regularizer)
        self.temperature = _validate.positive_float(where, "temperature", temperature)
        if input_dim is None:
            input_dim = getattr(layer, "in_features", None)
            if input_dim is None:
                raise ValueError(_validate.message(where, "input_dim", "given for a layer without in_features",
                                                   None))
        self.input_dim = _validate.positive_int(where, "input_dim", input_dim)
        v = _validate._real(where, "init_p", init_p)
        if not 0.0 < v < 1.0:
            raise ValueError(_validate.message(where, "init_p", "a probability in (0, 1)", init_p,
                                               "A learned p needs a finite logit."))
        dtype = getattr(layer, "dtype", np.dtype(np.float32))
        self.p_logit = Parameter(np.zeros(1, dtype), "p_logit")
        super().__init__(v, seed=seed)
        self._config = {"init_p": v, "weight_regularizer": self.weight_regularizer,
                        "dropout_regularizer": self.dropout_regularizer, "temperature": self.temperature,
                        "input_dim": self.input_dim}

    @property
    def p(self) -> float:
        return float(1.0 / (1.0 + np.exp(-float(self.p_logit.value[0]))))

    @p.setter
    def p(self, value: float) -> None:
        v = _validate._real("ConcreteDropout", "p", value)
        if not 0.0 < v < 1.0:
            raise ValueError(_validate.message("ConcreteDropout", "p", "a probability in (0, 1)", value))
        self.p_logit.value[0] = math.log(v) - math.log1p(-v)

    def config(self) -> dict:
        return dict(self._config)

    def children(self) -> list[Module]:
        return [self.layer]

    def _parameters(self) -> list[Parameter]:
        return [self.p_logit]

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        mask_ss, layer_ss = ss.spawn(2)
        super()._reseed(mask_ss)
        if not self.layer._explicit_seed:
            self.layer._reseed(layer_ss)

    def _relaxed(self, shape, counter) -> np.ndarray:
        """``s``, the relaxed drop indicator in (0, 1), in float64."""
        u = _noise.uniform(shape, self._key, counter)
        logits = (float(self.p_logit.value[0]) + np.log(u) - np.log1p(-u)) / self.temperature
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # a sigmoid that cannot overflow

    def _sample(self, shape, dtype, counter):
        return ((1.0 - self._relaxed(shape, counter)) / (1.0 - self.p)).astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = self._check_input(x)
        return self.layer.forward(super().forward(self._x))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        g = self.layer.backward(dy)
        p = self.p
        if self._state[0] == "train":  # the base's backward, sharing the regenerated s with dp_logit
            _, counter, shape, _ = self._state
            s = self._relaxed(shape, counter)
            noise = (1.0 - s) / (1.0 - p)
            dx = (g * noise).astype(g.dtype, copy=False)
            self.p_logit.grad += np.sum(g * self._x * noise * (p - s / self.temperature))
        else:
            dx = super().backward(g)
        sq = sum(float(np.sum(q.value * q.value)) for q in self.layer.parameters())
        d_reg_dp = (self.weight_regularizer * sq / (1 - p) ** 2
                    + self.dropout_regularizer * self.input_dim * (math.log(p) - math.log1p(-p)))
        self.p_logit.grad += d_reg_dp * p * (1 - p)
        for q in self.layer.parameters():
            q.grad += (2 * self.weight_regularizer / (1 - p)) * q.value
        return dx

    def _penalty(self) -> float:
        p = self.p
        sq = sum(float(np.sum(q.value * q.value)) for q in self.layer.parameters())
        entropy_term = p * math.log(p) + (1 - p) * math.log1p(-p)
        return self.weight_regularizer * sq / (1 - p) + self.dropout_regularizer * self.input_dim * entropy_term
