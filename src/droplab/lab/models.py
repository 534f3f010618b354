"""Networks the lab builds from a spec: logistic regression, an MLP with dropout after each
hidden activation, a CNN (1-D on signals, 2-D on images) for the channel and spatial variants,
and recurrent classifiers (a tanh RNN and MNIST-1D's bidirectional GRU) for locked dropout.

One builder per model kind serves every command (compare, sweep, uncertainty, study), so
"the same network with and without dropout" means the same code with only ``p`` changed:
with the same seed, both arms start from bit-identical weights. Each kind has its registry of
the variants that fit its activations: ``VARIANTS`` for ``(N, F)``, ``SPATIAL_VARIANTS`` for
``(N, C, H, W)`` and ``(N, C, L)``, ``SEQUENCE_VARIANTS`` for ``(N, T, F)``; ``MODELS`` maps
a kind (a ``--model`` name) to its registry.

The MNIST-1D paper's four networks (Greydanus 2020, its repository's ``models.py``) are
``logistic``, ``mlp`` with ``hidden=(100, 100), residual=True``, ``cnn`` on a signal and
``gru``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from droplab.errors import InvalidValueError
from droplab import _validate, nn
from droplab.nn.dropout import variant as nn_variant

__all__ = ["ACTIVATIONS", "VARIANTS", "SPATIAL_VARIANTS", "SEQUENCE_VARIANTS", "MODELS", "INITS", "INIT_CHOICES",
           "BUG_VARIANTS", "SIGNAL_ONLY", "IMAGE_ONLY", "CNN1D_LAYERS", "mlp", "logistic", "cnn", "cnn1d",
           "cnn1d_length", "rnn", "gru", "bn_mlp",
           "ensemble_net", "parse_hidden"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "selu": nn.SELU,
}
# the initialisation that suits each activation
INITS = {"relu": "he", "leaky_relu": "he", "tanh": "glorot", "sigmoid": "glorot", "selu": "lecun"}
# --init: "auto" is INITS[activation] for hidden layers and glorot for the output layer; any other
# choice is used for every Dense ("small": normal with std 0.01, the NNFS book's 0.01 * randn)
INIT_CHOICES = ("auto", "he", "glorot", "lecun", "torch", "small")


def _variant(name: str, **options) -> Callable[[float], nn.Module]:
    """factory(p) of the NumPy layer of a dropout-family registry variant (droplab.family)."""
    cls = nn_variant(name)
    return lambda p: cls(p, **options)


# name -> factory(p) of a dropout-family layer for (N, features) activations
VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": _variant("dropout"),
    "classic": _variant("dropout", inverted=False),
    "gaussian": _variant("gaussian_dropout"),
    "alpha": _variant("alpha_dropout"),  # pair with --activation selu
}

# name -> factory(p) for the CNN's feature maps: (N, C, H, W) on images, (N, C, L) on signals
SPATIAL_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": _variant("dropout"),
    "dropout1d": _variant("dropout1d"),
    "dropout2d": _variant("dropout2d"),
    "dropblock": _variant("drop_block2d", block_size=3),
    "gaussian": _variant("gaussian_dropout"),
}
# the CNN's variants that fit one rank of feature map only
SIGNAL_ONLY = ("dropout1d",)
IMAGE_ONLY = ("dropout2d", "dropblock")

# name -> factory(p) for (N, T, F) sequences (the recurrent classifier)
SEQUENCE_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": _variant("dropout"),
    "locked": _variant("locked_dropout"),
}

MODELS: dict[str, dict[str, Callable[[float], nn.Module]]] = {
    "mlp": VARIANTS, "logistic": {"dropout": VARIANTS["dropout"]}, "cnn": SPATIAL_VARIANTS,
    "rnn": SEQUENCE_VARIANTS, "gru": SEQUENCE_VARIANTS,
}


class _UnusedDropout(nn.Module):
    """The bug ``h_drop = dropout(h); return h``: the mask is drawn and thrown away."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(p)

    def children(self):
        return [self.drop]

    def forward(self, x):
        self.drop.forward(x)  # computed, never used
        return x

    def backward(self, dy):
        return dy


class _NoRescaleDropout(nn.Dropout):
    """The bug ``y = x * mask`` in training and ``y = x`` in eval: no 1/(1-p), no (1-p)."""

    def __init__(self, p: float) -> None:
        super().__init__(p, inverted=False)

    def _eval_factor(self) -> float:
        return 1.0


# name -> factory(p) of the classic dropout bugs (study bug-gallery); not --variant choices
BUG_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "bug-unused-output": _UnusedDropout,
    "bug-no-rescaling": _NoRescaleDropout,
}


def parse_hidden(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"256,256"`` -> ``(256, 256)``; an empty string means no hidden layer."""
    if not isinstance(text, str):
        return tuple(_validate.positive_int("mlp", "hidden", h) for h in text)
    parts = [t.strip() for t in text.split(",") if t.strip()]
    try:
        sizes = tuple(int(t) for t in parts)
    except ValueError:
        raise InvalidValueError(_validate.message("--hidden", "hidden", "comma-separated positive integers like 256,256",
                                           text)) from None
    if any(s < 1 for s in sizes):
        raise InvalidValueError(_validate.message("--hidden", "hidden", "comma-separated positive integers like 256,256",
                                           text))
    return sizes


def mlp(inputs: int, hidden: Sequence[int], outputs: int, *, activation: str = "relu", p: float = 0.0,
        input_p: float = 0.0, variant: str | Callable[[float], nn.Module] = "dropout", l2: float = 0.0,
        first_l2: float = 0.0, init: str = "auto", input_layer: bool = False, residual: bool = False,
        seed=None) -> nn.Sequential:
    """``Dense -> activation -> dropout(p)`` per hidden size, then a Dense to ``outputs`` logits.

    Args:
        inputs, outputs (int): input features, output units.
        hidden: hidden layer sizes.
        activation (str): one of ``ACTIVATIONS``. Default "relu".
        p (float): drop probability after each hidden activation (the layers are present,
            and consume their seeds, even at p = 0, so both arms share initial weights).
        input_p (float): drop probability on the inputs. Default 0.
        variant: one of ``VARIANTS``, or a factory ``p -> layer`` (the bug gallery's broken
            layers). Default "dropout".
        l2 (float): L2 penalty on every Dense weight. Default 0.
        first_l2 (float): L2 penalty on the first Dense layer's weights AND biases (the NNFS
            book's regulariser, 5e-4 in chapter 15), added to ``l2``. Default 0.
        init (str): one of ``INIT_CHOICES``. Default "auto".
        input_layer (bool): build the input dropout layer even when ``input_p`` is 0, so that
            networks differing only in ``input_p`` start from the same weights. The layer is
            built anyway when ``input_p > 0``.
        residual (bool): wrap each hidden block after the first whose width equals the one
            before it in a skip connection, ``h + dropout(activation(Dense(h)))``: the MNIST-1D
            paper's MLP is ``mlp(40, (100, 100), 10, residual=True)``. Default False.
        seed: seed of the whole network.

    Example:
        >>> mlp(40, (100, 100), 10, residual=True, seed=0)[3].__class__.__name__
        'Residual'
        >>> a = mlp(5, (7,), 3, p=0.0, input_layer=True, seed=3)
        >>> b = mlp(5, (7,), 3, p=0.5, input_p=0.2, seed=3)
        >>> all((x.value == y.value).all() for x, y in zip(a.parameters(), b.parameters()))
        True
    """
    activation = _validate.one_of("mlp", "activation", activation, ACTIVATIONS)
    factory = variant if callable(variant) else VARIANTS[_validate.one_of("mlp", "variant", variant, VARIANTS)]
    init = _validate.one_of("mlp", "init", init, INIT_CHOICES)
    _validate.probability("mlp", "p", p)
    _validate.probability("mlp", "input_p", input_p)
    _validate.nonnegative_float("mlp", "first_l2", first_l2)
    layers: list[nn.Module] = []
    if input_p > 0 or input_layer:
        layers.append(factory(input_p))
    width = inputs
    for i, h in enumerate(hidden):
        extra = first_l2 if i == 0 else 0.0
        block = [nn.Dense(width, h, l2=l2 + extra, bias_l2=extra, init=INITS[activation] if init == "auto" else init),
                 ACTIVATIONS[activation](), factory(p)]
        layers += [nn.Residual(nn.Sequential(*block))] if residual and i > 0 and h == width else block
        width = h
    extra = first_l2 if not hidden else 0.0
    layers.append(nn.Dense(width, outputs, l2=l2 + extra, bias_l2=extra, init="glorot" if init == "auto" else init))
    return nn.Sequential(*layers, seed=seed)


def logistic(inputs: int, outputs: int, *, p: float = 0.0, init: str = "auto", seed=None) -> nn.Sequential:
    """Multinomial logistic regression: ``dropout(p) -> Dense(inputs, outputs)`` on the inputs.

    The dropout layer is present (and consumes its seed) even at p = 0, so the arms of a
    comparison start from the same weights; dropout on a linear model's inputs is an adaptive
    L2 penalty (Wager et al. 2013). ``p``: probability that an input is zeroed (not the keep
    probability). ``init``: one of ``INIT_CHOICES`` ("auto": glorot).

    Example:
        >>> import numpy as np
        >>> logistic(40, 10, seed=0).forward(np.zeros((3, 40), np.float32)).shape
        (3, 10)
    """
    init = _validate.one_of("logistic", "init", init, INIT_CHOICES)
    _validate.probability("logistic", "p", p)
    return nn.Sequential(VARIANTS["dropout"](p), nn.Dense(inputs, outputs, init="glorot" if init == "auto" else init),
                         seed=seed)


def bn_mlp(inputs: int, width: int, outputs: int, *, p_before: float = 0.0, p_after: float = 0.0,
           seed=None) -> nn.Sequential:
    """Two hidden blocks ``Dense -> BatchNorm1d -> ReLU -> Dropout``, then a Dense to ``outputs``.

    ``p_before`` is the drop probability after the first block, so the second BatchNorm's input
    carries dropout noise in training but not in eval (dropout before BN); ``p_after`` the one
    after the last block, where no BN follows (Li et al. 2019's advice). The layer list is the
    same at every p, so a seed gives the same initial weights.
    """
    from droplab.nn.norm import BatchNorm1d

    return nn.Sequential(nn.Dense(inputs, width), BatchNorm1d(width), nn.ReLU(), nn.Dropout(p_before),
                         nn.Dense(width, width), BatchNorm1d(width), nn.ReLU(), nn.Dropout(p_after),
                         nn.Dense(width, outputs, init="glorot"), seed=seed)


def ensemble_net(inputs: int, units: int, outputs: int, *, p: float, head: str, head_units: int = 32,
                 seed=None) -> nn.Sequential:
    """The float64 network of ``droplab ensemble``: ``Dense(inputs, units) -> ReLU -> Dropout(p)`` then

    * ``head="softmax"``: ``Dense(units, outputs)`` (dropout feeds the softmax layer directly:
      weight scaling IS the geometric mean);
    * ``head="relu"``: ``Dense(units, head_units) -> ReLU -> Dense(head_units, outputs)``
      (a ReLU between: weight scaling approximates it).

    ``p`` is the drop probability (not the keep probability).

    Example:
        >>> import numpy as np
        >>> ensemble_net(4, 8, 3, p=0.5, head="relu", seed=0).forward(np.zeros((2, 4))).shape
        (2, 3)
    """
    import numpy as np

    _validate.one_of("ensemble", "head", head, ("softmax", "relu"))
    _validate.probability("ensemble", "p", p)
    f64 = np.float64
    layers: list[nn.Module] = [nn.Dense(inputs, units, dtype=f64), nn.ReLU(), nn.Dropout(p)]
    if head == "softmax":
        layers.append(nn.Dense(units, outputs, init="glorot", dtype=f64))
    else:
        layers += [nn.Dense(units, head_units, dtype=f64), nn.ReLU(),
                   nn.Dense(head_units, outputs, init="glorot", dtype=f64)]
    return nn.Sequential(*layers, seed=seed)


def cnn(sample_shape: Sequence[int], outputs: int, *, p: float = 0.0, variant: str | None = None,
        channels: int | None = None, init: str = "auto", seed=None) -> nn.Sequential:
    """The lab's CNN, chosen by the shape of one sample: :func:`cnn1d` on a signal ``(C, L)``,
    else ``Conv2d(3x3, same) -> ReLU -> variant(p) -> MaxPool2d(2) -> Flatten -> Dense`` on
    an image ``(C, H, W)``.

    For ``digits`` (``(1, 8, 8)``) that is 32 maps of 8 x 8, dropped whole (``dropout2d``) or
    in 3 x 3 blocks (``dropblock``), pooled to 4 x 4, then 512 -> 10. For MNIST-1D (``(1, 40)``)
    it is the paper's three-layer Conv1d network.

    Args:
        sample_shape: ``(C, H, W)`` or ``(C, L)`` of one sample.
        outputs (int): output units (classes).
        p (float): drop probability of the variant (present, consuming its seed, even at 0);
            the probability that a unit (or map) is zeroed, not the keep probability.
        variant (str | None): one of ``SPATIAL_VARIANTS`` that fits the rank (``dropout1d`` on
            signals only; ``dropout2d`` and ``dropblock`` on images only). Default: ``dropout2d``
            on images, ``dropout1d`` on signals.
        channels (int | None): convolution maps. Default 32 on images, 25 on signals.
        init (str): ``"auto"`` (he for the convolutions, glorot for the head) or one of
            ``INIT_CHOICES`` for every layer ("torch": PyTorch's defaults).
        seed: seed of the whole network.

    Raises:
        ValueError: for a shape of another rank or a variant that does not fit the rank.

    Example:
        >>> import numpy as np
        >>> cnn((1, 8, 8), 10, p=0.1, variant="dropblock", seed=0).forward(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 10)
        >>> cnn((1, 40), 10, p=0.1, seed=0).forward(np.zeros((2, 1, 40), np.float32)).shape
        (2, 10)
    """
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 2:
        return cnn1d(shape, outputs, p=p, variant=variant or "dropout1d", channels=channels or 25, init=init,
                     seed=seed)
    if len(shape) != 3:
        raise InvalidValueError(_validate.message("cnn", "sample_shape", "(C, H, W) for an image or (C, L) for a signal",
                                           sample_shape))
    variant = _validate.one_of("cnn", "variant", variant or "dropout2d", SPATIAL_VARIANTS)
    if variant in SIGNAL_ONLY:
        raise InvalidValueError(_validate.message("cnn", "variant", "one of " + ", ".join(
            repr(v) for v in SPATIAL_VARIANTS if v not in SIGNAL_ONLY) + " on images", variant,
            "dropout1d drops channels of (N, C, L) signals; on images use dropout2d."))
    init = _validate.one_of("cnn", "init", init, INIT_CHOICES)
    _validate.probability("cnn", "p", p)
    c, h, w = shape
    channels = channels or 32
    return nn.Sequential(nn.Conv2d(c, channels, 3, padding=1, init=_conv_init(init)), nn.ReLU(),
                         SPATIAL_VARIANTS[variant](p), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Dense(channels * (h // 2) * (w // 2), outputs, init="glorot" if init == "auto" else init),
                         seed=seed)


def _conv_init(init: str) -> str:
    """A Dense initialisation choice as a convolution's ("small" and "auto" have no conv form: he)."""
    return init if init in ("he", "glorot", "lecun", "torch") else "he"


# the MNIST-1D paper's CNN: (kernel, stride, padding) of its three Conv1d layers
CNN1D_LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))


def cnn1d_length(length: int) -> int:
    """The length :func:`cnn1d`'s last convolution gives for a signal of ``length`` samples (0:
    too short). MNIST-1D: 40 -> 19 -> 10 -> 5.

    Example:
        >>> cnn1d_length(40), cnn1d_length(2)
        (5, 0)
    """
    for k, s, pad in CNN1D_LAYERS:
        if length + 2 * pad < k:
            return 0
        length = (length + 2 * pad - k) // s + 1
    return length


def cnn1d(signal_shape: Sequence[int], outputs: int, *, p: float = 0.0, variant: str = "dropout1d",
          channels: int = 25, init: str = "auto", seed=None) -> nn.Sequential:
    """The MNIST-1D paper's CNN: three ``Conv1d -> ReLU`` layers of ``channels`` maps (kernels 5,
    3, 3; stride 2; padding 1), ``variant(p)`` on the last maps, then a linear head on the
    flattened ``channels * L'`` features (MNIST-1D: 25 x 5 = 125).

    Args:
        signal_shape: ``(C, L)`` of one sample (MNIST-1D: ``(1, 40)``).
        outputs (int): output units (classes).
        p (float): probability that a unit (``dropout``) or a whole channel (``dropout1d``) is
            zeroed, not the keep probability; the layer is present, consuming its seed, even at 0.
        variant (str): ``dropout``, ``dropout1d`` or ``gaussian``. Default "dropout1d".
        channels (int): maps of every convolution. Default 25.
        init (str): "auto" (he for the convolutions, glorot for the head) or one of
            ``INIT_CHOICES`` for every layer ("torch": PyTorch's defaults, as the paper's code).
        seed: seed of the whole network.

    Shape:
        input ``(N, C, L)``, output ``(N, outputs)``.

    Raises:
        ValueError: for a signal shorter than 3 samples or a variant that needs images.

    Example:
        >>> import numpy as np
        >>> net = cnn1d((1, 40), 10, p=0.3, seed=0)
        >>> net.forward(np.zeros((4, 1, 40), np.float32)).shape, net[-1].weight.value.shape
        ((4, 10), (125, 10))

    Reference:
        Greydanus, "Scaling down Deep Learning" (MNIST-1D), arXiv:2011.14439, 2020 (its
        repository's ``ConvBase``); Tompson et al., "Efficient Object Localization Using
        Convolutional Networks", CVPR 2015 (channel dropout).
    """
    variant = _validate.one_of("cnn", "variant", variant, SPATIAL_VARIANTS)
    if variant in IMAGE_ONLY:
        raise InvalidValueError(_validate.message("cnn", "variant", "one of " + ", ".join(
            repr(v) for v in SPATIAL_VARIANTS if v not in IMAGE_ONLY) + " on signals", variant,
            f"{variant} drops parts of (N, C, H, W) images; on (N, C, L) signals use dropout1d."))
    init = _validate.one_of("cnn", "init", init, INIT_CHOICES)
    _validate.probability("cnn", "p", p)
    c, length = (int(s) for s in signal_shape)
    out = cnn1d_length(length)
    if out < 1:
        raise InvalidValueError(_validate.message("cnn", "signal length", "at least 3 samples for the 1-D CNN", length))
    layers: list[nn.Module] = []
    width = c
    for k, s, pad in CNN1D_LAYERS:
        layers += [nn.Conv1d(width, channels, k, stride=s, padding=pad, init=_conv_init(init)), nn.ReLU()]
        width = channels
    layers += [SPATIAL_VARIANTS[variant](p), nn.Flatten(),
               nn.Dense(channels * out, outputs, init="glorot" if init == "auto" else init)]
    return nn.Sequential(*layers, seed=seed)


def rnn(features: int, steps: int, outputs: int, *, p: float = 0.0, variant: str = "locked", hidden: int = 32,
        seed=None) -> nn.Sequential:
    """``RNN(return_sequences) -> variant(p) -> Flatten -> Dense``: a sequence classifier.

    Dropout sits on the ``(N, T, hidden)`` state sequence: ``locked`` drops the same hidden
    units at every time step of a sequence, ``dropout`` draws afresh at every step. For
    MNIST-1D read as a sequence, ``features = 1`` and ``steps = 40``.

    Args:
        features (int): features per time step. steps (int): sequence length.
        outputs (int): output units (classes).
        p (float): drop probability of the variant.
        variant (str): one of ``SEQUENCE_VARIANTS``. Default "locked".
        hidden (int): recurrent state size. Default 32.
        seed: seed of the whole network.

    Example:
        >>> import numpy as np
        >>> rnn(1, 40, 10, p=0.2, seed=0).forward(np.zeros((3, 40, 1), np.float32)).shape
        (3, 10)
    """
    variant = _validate.one_of("rnn", "variant", variant, SEQUENCE_VARIANTS)
    _validate.probability("rnn", "p", p)
    return nn.Sequential(nn.RNN(features, hidden, return_sequences=True), SEQUENCE_VARIANTS[variant](p),
                         nn.Flatten(), nn.Dense(steps * hidden, outputs, init="glorot"), seed=seed)



def gru(features: int, steps: int, outputs: int, *, p: float = 0.0, variant: str = "locked", hidden: int = 6,
        init: str = "auto", seed=None) -> nn.Sequential:
    """The MNIST-1D paper's GRU: ``GRU(bidirectional, return_sequences) -> variant(p) -> Flatten
    -> Dense``, a linear head on every step's output.

    The 40 samples of an MNIST-1D signal are read as a sequence ``(40, 1)``; each direction has
    ``hidden`` units, so the head reads ``steps * 2 * hidden`` features (40 x 12 = 480).
    ``locked`` drops the same state units at every step of a sequence, ``dropout`` draws afresh
    at every step.

    Args:
        features (int): features per time step. steps (int): sequence length.
        outputs (int): output units (classes).
        p (float): probability that a state unit is zeroed (not the keep probability); the
            layer is present, consuming its seed, even at 0.
        variant (str): one of ``SEQUENCE_VARIANTS``. Default "locked".
        hidden (int): state units per direction. Default 6 (the paper's).
        init (str): the head's initialisation ("auto": glorot; one of ``INIT_CHOICES``). The
            GRU's own weights are Glorot-uniform (input) and orthogonal (recurrent).
        seed: seed of the whole network.

    Example:
        >>> import numpy as np
        >>> gru(1, 40, 10, p=0.3, seed=0).forward(np.zeros((3, 40, 1), np.float32)).shape
        (3, 10)

    Reference:
        Greydanus, "Scaling down Deep Learning" (MNIST-1D), arXiv:2011.14439, 2020 (its
        repository's ``GRUBase``); Gal & Ghahramani, "A Theoretically Grounded Application of
        Dropout in Recurrent Neural Networks", NeurIPS 2016 (locked dropout).
    """
    variant = _validate.one_of("gru", "variant", variant, SEQUENCE_VARIANTS)
    init = _validate.one_of("gru", "init", init, INIT_CHOICES)
    _validate.probability("gru", "p", p)
    return nn.Sequential(nn.GRU(features, hidden, bidirectional=True, return_sequences=True),
                         SEQUENCE_VARIANTS[variant](p), nn.Flatten(),
                         nn.Dense(steps * 2 * hidden, outputs, init="glorot" if init == "auto" else init), seed=seed)
