"""Networks the lab builds from a spec: an MLP with dropout after each hidden activation.

One builder serves every command (compare, sweep, uncertainty, study), so "the same
network with and without dropout" means the same code with only ``p`` changed: with the
same seed, both arms start from bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from droplab import _validate, nn

__all__ = ["ACTIVATIONS", "VARIANTS", "INITS", "mlp", "parse_hidden"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "selu": nn.SELU,
}
# the initialisation that suits each activation
INITS = {"relu": "he", "leaky_relu": "he", "tanh": "glorot", "sigmoid": "glorot", "selu": "lecun"}

# name -> factory(p) of a dropout-family layer for (N, features) activations
VARIANTS: dict[str, Callable[[float], nn.Module]] = {
    "dropout": lambda p: nn.Dropout(p),
    "classic": lambda p: nn.Dropout(p, inverted=False),
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
