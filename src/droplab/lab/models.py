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

__all__ = ["ACTIVATIONS", "VARIANTS", "SPATIAL_VARIANTS", "SEQUENCE_VARIANTS", "MODELS", "INITS", "mlp", "cnn",
           "rnn", "parse_hidden"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "selu": nn.SELU,
}
# the initialisation that suits each activation
INITS = {"relu": "he", "leaky_relu": "he", "tanh": "glorot", "sigmoid": "glorot", "selu": "lecun"}

# name -> factory(p) of a dropout-family layer for (N, features) activations
VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": lambda p: nn.Dropout(p),
    "classic": lambda p: nn.Dropout(p, inverted=False),
    "gaussian": lambda p: nn.GaussianDropout(p),
    "alpha": lambda p: nn.AlphaDropout(p),  # pair with --activation selu
}

# name -> factory(p) for (N, C, H, W) feature maps (the CNN)
SPATIAL_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": lambda p: nn.Dropout(p),
    "dropout2d": lambda p: nn.Dropout2d(p),
    "dropblock": lambda p: nn.DropBlock2d(p, 3),
    "gaussian": lambda p: nn.GaussianDropout(p),
}

# name -> factory(p) for (N, T, F) sequences (the recurrent classifier)
SEQUENCE_VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": lambda p: nn.Dropout(p),
    "locked": lambda p: nn.LockedDropout(p),
}

MODELS: dict[str, dict[str, Callable[[float], nn.Module]]] = {
    "mlp": VARIANTS, "cnn": SPATIAL_VARIANTS, "rnn": SEQUENCE_VARIANTS,
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
        input_p: float = 0.0, variant: str = "dropout", l2: float = 0.0, seed=None) -> nn.Sequential:
    """``Dense -> activation -> dropout(p)`` per hidden size, then a Dense to ``outputs`` logits.

    Args:
        inputs, outputs (int): input features, output units.
        hidden: hidden layer sizes.
        activation (str): one of ``ACTIVATIONS``. Default "relu".
        p (float): drop probability after each hidden activation (the layers are present,
            and consume their seeds, even at p = 0, so both arms share initial weights).
        input_p (float): drop probability on the inputs (no layer when 0). Default 0.
        variant (str): one of ``VARIANTS``. Default "dropout".
        l2 (float): L2 penalty on every Dense weight. Default 0.
        seed: seed of the whole network.
    """
    activation = _validate.one_of("mlp", "activation", activation, ACTIVATIONS)
    variant = _validate.one_of("mlp", "variant", variant, VARIANTS)
    _validate.probability("mlp", "p", p)
    _validate.probability("mlp", "input_p", input_p)
    layers: list[nn.Module] = []
    if input_p > 0:
        layers.append(VARIANTS[variant](input_p))
    width = inputs
    for h in hidden:
        layers += [nn.Dense(width, h, l2=l2, init=INITS[activation]), ACTIVATIONS[activation](),
                   VARIANTS[variant](p)]
        width = h
    layers.append(nn.Dense(width, outputs, l2=l2, init="glorot"))
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
