"""Networks the lab builds from a spec: an MLP with dropout after each hidden activation, a
small CNN for the spatial variants and a recurrent classifier for locked dropout.

One builder per model kind serves every command (compare, sweep, uncertainty, study), so
"the same network with and without dropout" means the same code with only ``p`` changed:
with the same seed, both arms start from bit-identical weights. Each kind has its registry of
the variants that fit its activations: ``VARIANTS`` for ``(N, F)``, ``SPATIAL_VARIANTS`` for
``(N, C, H, W)``, ``SEQUENCE_VARIANTS`` for ``(N, T, F)``; ``MODELS`` maps a kind to its
registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from droplab import _validate, nn
from droplab.nn.dropout import variant as nn_variant

__all__ = ["ACTIVATIONS", "VARIANTS", "SPATIAL_VARIANTS", "SEQUENCE_VARIANTS", "MODELS", "INITS", "INIT_CHOICES",
           "BUG_VARIANTS", "mlp", "cnn", "rnn", "bn_mlp", "ensemble_net", "parse_hidden"]

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

# name -> factory(p) for (N, C, H, W) feature maps (the CNN)
SPATIAL_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": _variant("dropout"),
    "dropout2d": _variant("dropout2d"),
    "dropblock": _variant("drop_block2d", block_size=3),
    "gaussian": _variant("gaussian_dropout"),
}

# name -> factory(p) for (N, T, F) sequences (the recurrent classifier)
SEQUENCE_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": _variant("dropout"),
    "locked": _variant("locked_dropout"),
}

MODELS: dict[str, dict[str, Callable[[float], nn.Module]]] = {
    "mlp": VARIANTS, "cnn": SPATIAL_VARIANTS, "rnn": SEQUENCE_VARIANTS,
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
        raise ValueError(_validate.message("--hidden", "hidden", "comma-separated positive integers like 256,256",
                                           text)) from None
    if any(s < 1 for s in sizes):
        raise ValueError(_validate.message("--hidden", "hidden", "comma-separated positive integers like 256,256",
                                           text))
    return sizes


def mlp(inputs: int, hidden: Sequence[int], outputs: int, *, activation: str = "relu", p: float = 0.0,
        input_p: float = 0.0, variant: str | Callable[[float], nn.Module] = "dropout", l2: float = 0.0,
        first_l2: float = 0.0, init: str = "auto", input_layer: bool = False, seed=None) -> nn.Sequential:
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
        seed: seed of the whole network.

    Example:
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
        layers += [nn.Dense(width, h, l2=l2 + extra, bias_l2=extra,
                            init=INITS[activation] if init == "auto" else init),
                   ACTIVATIONS[activation](), factory(p)]
        width = h
    extra = first_l2 if not hidden else 0.0
    layers.append(nn.Dense(width, outputs, l2=l2 + extra, bias_l2=extra, init="glorot" if init == "auto" else init))
    return nn.Sequential(*layers, seed=seed)


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


def cnn(image_shape: Sequence[int], outputs: int, *, p: float = 0.0, variant: str = "dropout2d",
        channels: int = 32, seed=None) -> nn.Sequential:
    """``Conv2d(3x3, same) -> ReLU -> variant(p) -> MaxPool2d(2) -> Flatten -> Dense``.

    For ``digits`` (``image_shape = (1, 8, 8)``) that is 32 maps of 8 x 8, dropped whole
    (``dropout2d``) or in 3 x 3 blocks (``dropblock``), pooled to 4 x 4, then 512 -> 10.

    Args:
        image_shape: ``(C, H, W)`` of one sample.
        outputs (int): output units (classes).
        p (float): drop probability of the variant (present, consuming its seed, even at 0).
        variant (str): one of ``SPATIAL_VARIANTS``. Default "dropout2d".
        channels (int): convolution maps. Default 32.
        seed: seed of the whole network.

    Example:
        >>> import numpy as np
        >>> cnn((1, 8, 8), 10, p=0.1, variant="dropblock", seed=0).forward(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 10)
    """
    variant = _validate.one_of("cnn", "variant", variant, SPATIAL_VARIANTS)
    _validate.probability("cnn", "p", p)
    c, h, w = (int(s) for s in image_shape)
    return nn.Sequential(nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(), SPATIAL_VARIANTS[variant](p),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dense(channels * (h // 2) * (w // 2), outputs,
                                                                  init="glorot"), seed=seed)


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
