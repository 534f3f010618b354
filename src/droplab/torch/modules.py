"""The dropout family as ``torch.nn.Module`` classes: one base, one hook per variant.

``Dropout`` is the mechanism: it owns a Philox key (from ``seed=`` exactly as the NumPy
engine's layers, or from a ``torch.Generator``) and a call counter, and on each training
forward draws mask number ``counter`` at the shape given by the ``noise_shape`` hook. The
variants change that shape (channel, locked, DropPath) or the noise (``_spec``: Alpha,
Gaussian, DropBlock). ``p`` is always the probability of zeroing (not the keep probability).

Key and counter travel in ``state_dict()`` (as extra state), so a reloaded model replays the
same masks.
"""

from __future__ import annotations

import math

import torch

from droplab import _validate, kernels
from droplab.torch import _core
from droplab.torch import functional as F

__all__ = [
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "GaussianDropout", "DropPath",
    "LockedDropout", "DropBlock2d", "DropConnectLinear", "ConcreteDropout", "regularization_loss",
]


class Dropout(torch.nn.Module):
    """Zeroes each element with probability ``p`` while training; drop-in for ``torch.nn.Dropout``.

    ``p``: probability that an element is zeroed (not the keep probability).

    In training, with ``inverted=True`` (the default), ``y = x * m / (1 - p)`` with
    ``m ~ Bernoulli(1 - p)``, so ``E[y] = x`` and evaluation is the identity; with
    ``inverted=False`` (Srivastava et al. 2014's classic form) training gives ``y = x * m`` and
    evaluation ``y = x * (1 - p)``. The gradient is the same mask applied to ``dy``. Kept
    values are ``x * (1/(1 - p))`` as ``torch.nn.Dropout`` computes them (the scale rounded once
    to the input's dtype, float32 for float16/bfloat16); the realised drop probability is within
    ``2**-33`` of ``p`` (32-bit thresholds); ``p = 1`` gives zeros and zero gradients. Masks
    are those of ``droplab.nn.Dropout`` with the same seed. On contiguous float32/float64 CPU tensors the mask is never stored: backward
    regenerates it from the key and the counter.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        axes (int | tuple[int, ...] | None): axes along which one mask value is shared (e.g.
            ``(2, 3)`` on ``(N, C, H, W)`` drops whole channels). Default None (per element).
        inverted (bool): scale in training (True) or at inference (False). Default True.
        seed (int | np.random.Generator | None): seed of the masks. Default None (fresh entropy).
        generator (torch.Generator | None): draw the key from this generator instead of ``seed``.

    Attributes:
        counter (int): the number of training forwards so far; the next one draws mask
            ``counter``. Setting it replays a mask.

    Shape:
        input ``(*)``, any floating dtype and device; output: the same shape, dtype and layout.

    Raises:
        ValueError: ``p`` outside [0, 1]; ``axes`` not axes of the input; both seed and generator.
        TypeError: ``p`` not a real number; a non-floating input.

    Example:
        >>> import torch
        >>> layer = Dropout(0.5, seed=0)
        >>> y = layer(torch.ones(2, 1000))
        >>> y.shape, sorted(set(y.unique().tolist()))
        (torch.Size([2, 1000]), [0.0, 2.0])
        >>> layer
        Dropout(p=0.5)
        >>> x = torch.ones(3)
        >>> layer.eval()(x) is x
        True

    Reference:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
        Overfitting", JMLR 15, 2014 (whose ``p`` is the RETAIN probability: ours is its ``1 - p``).
    """

    is_dropout = True
    #: True when masks are independent across batch rows, so mc_predict may stack copies.
    per_example = True
    _allow_one = True

    def __init__(self, p: float = 0.5, *, axes=None, inverted: bool = True, seed=None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        where = type(self).__name__
        self.p = p
        self.axes = _validate.axes(where, axes)
        self.inverted = bool(inverted)
        self.key = _core.make_key(where, seed, generator)
        self.counter = 0

    # -- configuration ----------------------------------------------------------------------------
    @property
    def p(self) -> float:
        """The drop probability (validated on assignment; rate schedules set it)."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = _validate.probability(type(self).__name__, "p", value, allow_one=self._allow_one)

    def extra_repr(self) -> str:
        parts = [f"p={self.p:g}"]
        if self.axes is not None:
            parts.append(f"axes={self.axes}")
        if not self.inverted:
            parts.append("inverted=False")
        return ", ".join(parts)

    def get_extra_state(self):
        return {"key": list(self.key), "counter": self.counter}

    def set_extra_state(self, state) -> None:
        self.key = (int(state["key"][0]), int(state["key"][1]))
        self.counter = int(state["counter"])

    def reseed(self, seed=None, *, generator: torch.Generator | None = None) -> Dropout:
        """New key from ``seed`` / ``generator``, counter back to 0; returns self."""
        self.key = _core.make_key(type(self).__name__, seed, generator)
        self.counter = 0
        return self

    # -- the hooks --------------------------------------------------------------------------------
    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the mask is drawn at (1 along shared axes), broadcast over the input."""
        return F.noise_shape(type(self).__name__, shape, self.axes)

    def _spec(self, x: torch.Tensor, shape: tuple[int, ...], counter: int):
        """The noise of one training forward (Python values only; see ``_core``)."""
        return _core.Bernoulli(self.p, self.key, counter, self._train_scale(), shape)

    def _train_scale(self) -> float:
        if not self.inverted:
            return 0.0 if self.p == 1.0 else 1.0
        return kernels.keep_scale(self.p)

    def _eval(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted or self.training:
            return x
        return x * (1.0 - self.p)

    # -- the mechanism ----------------------------------------------------------------------------
    @torch.compiler.disable  # a graph break: runs eagerly (key/counter are Python state)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.check_input(type(self).__name__, x)
        shape = self.noise_shape(tuple(x.shape))  # checks the rank even in eval
        if not self.training or self.p == 0:
            return self._eval(x)
        counter = self.counter
        self.counter += 1
        return _core.NoiseFunction.apply(x, self._spec(x, shape, counter))


class _ChannelDropout(Dropout):
    _spatial = 0

    def __init__(self, p: float = 0.5, *, seed=None, generator: torch.Generator | None = None) -> None:
        super().__init__(p, seed=seed, generator=generator)

    def noise_shape(self, shape):
        return F.channel_shape(type(self).__name__, shape, self._spatial)


class Dropout1d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, L)`` (or unbatched ``(C, L)``) with probability ``p``.

    ``p``: probability that a channel is zeroed (not the keep probability); survivors are
    scaled by ``1/(1 - p)``; evaluation is the identity. Masks match
    ``droplab.nn.Dropout(p, axes=2)``. Other ranks raise ``ValueError`` (no reinterpretation).

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed, generator: as for :class:`Dropout`.

    Shape:
        ``(N, C, L)`` or ``(C, L)``; output the same.

    Example:
        >>> import torch
        >>> y = Dropout1d(0.5, seed=0)(torch.ones(4, 8, 16))
        >>> bool(((y == 0).all(-1) | (y == 2).all(-1)).all())
        True
    """

    _spatial = 1


class Dropout2d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, H, W)`` (or unbatched ``(C, H, W)``) with probability ``p``.

    ``p``: probability that a channel is zeroed (not the keep probability); survivors are
    scaled by ``1/(1 - p)``; evaluation is the identity. Masks match
    ``droplab.nn.Dropout(p, axes=(2, 3))``. Other ranks raise ``ValueError``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed, generator: as for :class:`Dropout`.

    Shape:
        ``(N, C, H, W)`` or ``(C, H, W)``; output the same (channels_last kept).

    Example:
        >>> import torch
        >>> y = Dropout2d(0.5, seed=0)(torch.ones(4, 8, 3, 3))
        >>> bool(((y == 0).all((-2, -1)) | (y == 2).all((-2, -1))).all())
        True

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional Networks", CVPR 2015.
    """

    _spatial = 2


class Dropout3d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, D, H, W)`` (or unbatched ``(C, D, H, W)``) with probability ``p``.

    ``p``: probability that a channel is zeroed (not the keep probability); survivors are
    scaled by ``1/(1 - p)``; evaluation is the identity. Other ranks raise ``ValueError``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        seed, generator: as for :class:`Dropout`.

    Example:
        >>> import torch
        >>> Dropout3d(0.5, seed=0)(torch.ones(2, 3, 4, 4, 4)).shape
        torch.Size([2, 3, 4, 4, 4])
    """

    _spatial = 3


class AlphaDropout(Dropout):
    """Alpha dropout: keeps the zero mean and unit variance of SELU activations.

    ``p``: probability that an element is dropped (not the keep probability). A dropped
    element is set to SELU's negative saturation ``alpha' = -lambda * alpha``, then
    ``y = a * (x * m + alpha' * (1 - m)) + b`` with ``a = (q + alpha'^2 q (1 - q))^(-1/2)``,
    ``b = -a (1 - q) alpha'``, ``q = 1 - p_eff``. The gradient is ``a * m * dy``. Evaluation is
    the identity; ``p = 1`` gives zeros (as PyTorch). The keep mask is the kernels' mask.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        axes: shared axes, as for :class:`Dropout` (``(2, 3)`` gives feature alpha dropout).
        seed, generator: as for :class:`Dropout`.

    Example:
        >>> import torch
        >>> x = torch.nn.functional.selu(torch.randn(100_000, generator=torch.Generator().manual_seed(0)))
        >>> y = AlphaDropout(0.2, seed=0)(x)
        >>> abs(float(y.mean())) < 0.05, abs(float(y.std()) - 1) < 0.05
        (True, True)

    Reference:
        Klambauer, Unterthiner, Mayr and Hochreiter, "Self-Normalizing Neural Networks",
        NeurIPS 2017 (whose ``q`` is the keep probability; our ``p`` is ``1 - q``).
    """

    def __init__(self, p: float = 0.5, *, axes=None, seed=None, generator: torch.Generator | None = None) -> None:
        super().__init__(p, axes=axes, seed=seed, generator=generator)

    def _spec(self, x, shape, counter):
        return _core.Alpha(self.p, self.key, counter, shape)


class GaussianDropout(Dropout):
    """Multiplicative Gaussian noise ``y = x * e``, ``e ~ N(1, p / (1 - p))``.

    ``p``: the drop probability whose Bernoulli dropout has the same mean and variance (not
    the keep probability); ``p = 1`` would be infinite variance and is rejected. The gradient
    is ``e * dy`` (``e`` regenerated in backward). Evaluation is the identity. The noise comes
    from a ``torch.Generator`` seeded by ``(key, counter)``: reproducible, not the NumPy stream.

    Args:
        p (float): in [0, 1). Default 0.5.
        axes, seed, generator: as for :class:`Dropout`.

    Raises:
        ValueError: ``p`` outside [0, 1).

    Example:
        >>> import torch
        >>> y = GaussianDropout(0.5, seed=0)(torch.ones(200_000))
        >>> abs(float(y.mean()) - 1) < 0.02, abs(float(y.var()) - 1) < 0.02
        (True, True)

    Reference:
        Srivastava et al. 2014, section 10 (their ``p`` is the keep probability: variance
        ``(1 - p)/p`` there is ``p/(1 - p)`` here).
    """

    _allow_one = False

    def __init__(self, p: float = 0.5, *, axes=None, seed=None, generator: torch.Generator | None = None) -> None:
        super().__init__(p, axes=axes, seed=seed, generator=generator)

    def _spec(self, x, shape, counter):
        return _core.Gaussian(self.p, self.key, counter, shape)


class DropPath(Dropout):
    """Stochastic depth: drops a whole residual branch per sample (``mode="row"``) or per batch.

    ``p``: probability that a sample's branch is zeroed (not the keep probability); survivors
    are scaled by ``1/(1 - p)``; evaluation is the identity. Use on the branch:
    ``x + drop_path(block(x))``. Row masks match ``droplab.nn.Dropout(p, axes=(1, ...))``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.1.
        mode (str): ``"row"`` (one draw per sample; default) or ``"batch"`` (one per forward).
        seed, generator: as for :class:`Dropout`.

    Example:
        >>> import torch
        >>> y = DropPath(0.5, seed=0)(torch.ones(64, 3, 4))
        >>> bool(((y == 0).all((1, 2)) | (y == 2).all((1, 2))).all())
        True

    Reference:
        Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 (their survival
        probability is our ``1 - p``).
    """

    def __init__(self, p: float = 0.1, *, mode: str = "row", seed=None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, seed=seed, generator=generator)
        self.mode = _validate.one_of("DropPath", "mode", mode, ("row", "batch"))
        self.per_example = self.mode == "row"

    def noise_shape(self, shape):
        if not shape:
            return shape
        return ((shape[0],) if self.mode == "row" else (1,)) + (1,) * (len(shape) - 1)

    def extra_repr(self):
        return f"p={self.p:g}" + ("" if self.mode == "row" else ", mode='batch'")


class LockedDropout(Dropout):
    """Variational (locked) dropout: one mask per sequence, shared over every time step.

    ``p``: probability that a feature is zeroed for the whole sequence (not the keep
    probability); survivors scaled by ``1/(1 - p)``; evaluation is the identity. Masks match
    ``droplab.nn.Dropout(p, axes=1)`` on ``(N, T, F)``.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        batch_first (bool): input ``(N, T, F)`` (True, default) or ``(T, N, F)``.
        seed, generator: as for :class:`Dropout`.

    Example:
        >>> import torch
        >>> y = LockedDropout(0.5, seed=0)(torch.ones(4, 10, 6))
        >>> bool((y == y[:, :1]).all())
        True

    Reference:
        Gal and Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
        Neural Networks", NeurIPS 2016; Merity et al., AWD-LSTM, ICLR 2018.
    """

    def __init__(self, p: float = 0.5, *, batch_first: bool = True, seed=None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, seed=seed, generator=generator)
        self.batch_first = bool(batch_first)

    def noise_shape(self, shape):
        if len(shape) != 3:
            layout = "(N, T, F)" if self.batch_first else "(T, N, F)"
            raise ValueError(_validate.message("LockedDropout", "x", f"a 3-D {layout} tensor",
                                               f"tensor of shape {shape}"))
        return (shape[0], 1, shape[2]) if self.batch_first else (1, shape[1], shape[2])

    def extra_repr(self):
        return f"p={self.p:g}" + ("" if self.batch_first else ", batch_first=False")


class DropBlock2d(Dropout):
    """DropBlock: zeroes ``block_size`` x ``block_size`` squares of feature maps.

    ``p``: the expected fraction of zeroed elements (not the keep probability). Block corners
    are drawn with rate ``gamma`` solved exactly so the expected dropped fraction is ``p``
    (overlaps included; see :func:`droplab.torch._core.dropblock_gamma`), on the kernels' mask
    of the ``(H - b + 1) x (W - b + 1)`` valid corners; survivors are scaled by
    ``numel / kept`` of the forward. The gradient is the same mask times ``dy``; evaluation
    is the identity. Blocks larger than the map are clipped to it.

    Args:
        p (float): drop fraction in [0, 1]. Default 0.1.
        block_size (int): side of the square. Default 7.
        shared_channels (bool): one block mask for all channels of a sample. Default False.
        seed, generator: as for :class:`Dropout`.

    Shape:
        ``(N, C, H, W)`` or unbatched ``(C, H, W)``.

    Example:
        >>> import torch
        >>> y = DropBlock2d(0.2, 3, seed=0)(torch.ones(8, 4, 16, 16))
        >>> y.shape, bool((y >= 0).all())
        (torch.Size([8, 4, 16, 16]), True)

    Reference:
        Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional networks",
        NeurIPS 2018 (their ``keep_prob`` is our ``1 - p``).
    """

    def __init__(self, p: float = 0.1, block_size: int = 7, *, shared_channels: bool = False, seed=None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, seed=seed, generator=generator)
        self.block_size = _validate.positive_int("DropBlock2d", "block_size", block_size)
        self.shared_channels = bool(shared_channels)
        self.per_example = True

    @torch.compiler.disable  # a graph break: runs eagerly (key/counter are Python state)
    def forward(self, x):
        x = F.check_input("DropBlock2d", x)
        if not self.training or self.p == 0:
            F.block_noise("DropBlock2d", x, self.p, self.block_size, self.shared_channels, self.key, 0, False)
            return x
        counter = self.counter
        self.counter += 1
        return F.block_noise("DropBlock2d", x, self.p, self.block_size, self.shared_channels, self.key, counter,
                             True)

    def extra_repr(self):
        return f"p={self.p:g}, block_size={self.block_size}" + (", shared_channels=True"
                                                                 if self.shared_channels else "")


class DropConnectLinear(torch.nn.Linear):
    """A linear layer whose WEIGHTS are dropped: ``y = x @ (W * M / (1 - p)).T + b``.

    ``p``: probability that a weight is zeroed (not the keep probability). One mask per
    forward, shared by the batch (the documented choice: cheap, and the NumPy engine's
    per-batch mode); survivors scaled by ``1/(1 - p)`` so inference uses ``W`` itself (weight
    scaling). The weight mask is the kernels' mask and is regenerated in backward.

    Args:
        in_features, out_features (int): as ``torch.nn.Linear``.
        p (float): drop probability in [0, 1]. Default 0.5.
        bias (bool): add a bias (never dropped). Default True.
        seed, generator: as for :class:`Dropout`.
        device, dtype: as ``torch.nn.Linear``.

    Example:
        >>> import torch
        >>> layer = DropConnectLinear(4, 3, p=0.5, seed=0)
        >>> layer(torch.ones(2, 4)).shape
        torch.Size([2, 3])
        >>> layer
        DropConnectLinear(in_features=4, out_features=3, bias=True, p=0.5)

    Reference:
        Wan, Zeiler, Zhang, LeCun and Fergus, "Regularization of Neural Networks using
        DropConnect", ICML 2013 (their ``p`` is the keep probability).
    """

    is_dropout = True
    per_example = False

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True, *, seed=None,
                 generator: torch.Generator | None = None, device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.p = _validate.probability("DropConnectLinear", "p", p)
        self.key = _core.make_key("DropConnectLinear", seed, generator)
        self.counter = 0

    @torch.compiler.disable  # a graph break: runs eagerly (key/counter are Python state)
    def forward(self, x):
        w = self.weight
        if self.training and self.p > 0:
            counter = self.counter
            self.counter += 1
            spec = _core.Bernoulli(self.p, self.key, counter, kernels.keep_scale(self.p), tuple(w.shape))
            w = _core.NoiseFunction.apply(w, spec)
        return torch.nn.functional.linear(x, w, self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", p={self.p:g}"

    get_extra_state = Dropout.get_extra_state
    set_extra_state = Dropout.set_extra_state


class ConcreteDropout(torch.nn.Module):
    """Dropout whose rate ``p`` is learned, through the relaxed (Concrete) Bernoulli.

    ``p``: the probability that an input element is zeroed (not the keep probability),
    parameterised by a logit and learned. Training: ``u ~ U(0, 1)`` and
    ``z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / temperature)`` is a soft drop
    indicator and ``y = layer(x * (1 - z) / (1 - p))``; gradients flow into ``x`` and ``p``.
    Evaluation: ``y = layer(x)``. Add :meth:`regularization_loss` (or the module-level
    :func:`regularization_loss` of a model) to the loss: the paper's
    ``weight_regularizer * sum(W**2) / (1 - p) + dropout_regularizer * K * (p log p + (1-p) log(1-p))``
    with ``K`` the input features. Uniforms come from a ``torch.Generator`` seeded by
    ``(key, counter)``.

    Args:
        layer (torch.nn.Module | None): the layer the dropped input feeds (its parameters enter
            the weight term). Default None (dropout alone).
        p (float): initial drop probability in (0, 1). Default 0.1.
        temperature (float): relaxation temperature, > 0. Default 0.1.
        weight_regularizer (float): >= 0. Default 1e-6.
        dropout_regularizer (float): >= 0. Default 1e-5.
        seed, generator: as for :class:`Dropout`.

    Example:
        >>> import torch
        >>> cd = ConcreteDropout(torch.nn.Linear(5, 2), p=0.2, seed=0)
        >>> out = cd(torch.ones(8, 5))
        >>> (out.sum() + cd.regularization_loss()).backward()
        >>> round(cd.p, 4), cd.p_logit.grad is not None
        (0.2, True)

    Reference:
        Gal, Hron and Kendall, "Concrete Dropout", NeurIPS 2017.
    """

    is_dropout = True
    per_example = True

    def __init__(self, layer: torch.nn.Module | None = None, *, p: float = 0.1, temperature: float = 0.1,
                 weight_regularizer: float = 1e-6, dropout_regularizer: float = 1e-5, seed=None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        where = "ConcreteDropout"
        p = _validate.probability(where, "p", p)
        if not 0.0 < p < 1.0:
            raise ValueError(_validate.message(where, "p", "a probability in (0, 1)", p))
        if layer is not None and not isinstance(layer, torch.nn.Module):
            raise TypeError(_validate.message(where, "layer", "a torch.nn.Module or None", type(layer).__name__))
        self.layer = layer
        self.temperature = _validate.positive_float(where, "temperature", temperature)
        self.weight_regularizer = _validate.nonnegative_float(where, "weight_regularizer", weight_regularizer)
        self.dropout_regularizer = _validate.nonnegative_float(where, "dropout_regularizer", dropout_regularizer)
        self.p_logit = torch.nn.Parameter(torch.tensor(math.log(p) - math.log1p(-p), dtype=torch.float32))
        self.key = _core.make_key(where, seed, generator)
        self.counter = 0
        self._features = 0

    @property
    def p(self) -> float:
        """The current drop probability ``sigmoid(p_logit)``."""
        return float(torch.sigmoid(self.p_logit.detach()))

    @torch.compiler.disable  # a graph break: runs eagerly (key/counter are Python state)
    def forward(self, x):
        x = F.check_input("ConcreteDropout", x)
        self._features = int(math.prod(x.shape[1:])) if x.ndim > 1 else int(x.shape[0]) if x.ndim else 1
        if self.training:
            counter = self.counter
            self.counter += 1
            g = _core._generator(self.key, counter, x.device)
            eps = 1e-7
            u = torch.rand(x.shape, generator=g, dtype=torch.float32, device=x.device).to(x.dtype)
            p = torch.sigmoid(self.p_logit).to(x.dtype)
            z = torch.sigmoid((torch.log(p + eps) - torch.log1p(-p + eps) + torch.log(u + eps)
                               - torch.log1p(-u + eps)) / self.temperature)
            x = x * (1 - z) / (1 - p)
        return x if self.layer is None else self.layer(x)

    def regularization_loss(self) -> torch.Tensor:
        """The paper's weight and dropout terms (a scalar tensor, differentiable in ``p``)."""
        p = torch.sigmoid(self.p_logit)
        weights = sum((w.pow(2).sum() for w in self.layer.parameters()), torch.zeros(())) \
            if self.layer is not None else torch.zeros(())
        entropy_term = p * torch.log(p) + (1 - p) * torch.log1p(-p)
        return (self.weight_regularizer * weights / (1 - p)
                + self.dropout_regularizer * self._features * entropy_term)

    def extra_repr(self):
        return f"p={self.p:.4g} (learned), temperature={self.temperature:g}"

    get_extra_state = Dropout.get_extra_state
    set_extra_state = Dropout.set_extra_state


def regularization_loss(model: torch.nn.Module) -> torch.Tensor:
    """Sum of every :class:`ConcreteDropout`'s regularisation term in ``model`` (0 if none)."""
    terms = [m.regularization_loss() for m in model.modules() if isinstance(m, ConcreteDropout)]
    return sum(terms, torch.zeros(()))
