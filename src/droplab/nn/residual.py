"""``Residual(block)``: a skip connection, ``y = x + block(x)``."""

from __future__ import annotations

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab import _validate
from droplab.nn.module import Module, _as_float

__all__ = ["Residual"]


class Residual(Module):
    """Skip connection around a block: ``y = x + block(x)``.

    Backward sends the gradient down both paths and adds them: ``dx = dy + block.backward(dy)``.
    Put a ``DropPath`` at the end of the block to drop the whole branch per example
    (stochastic depth); the skip path is never dropped. ``train()`` / ``eval()`` and
    ``Sequential(seed=)`` reach the block as a child.

    Args:
        block (Module): the residual branch; its output must have its input's shape.

    Shape:
        input ``(N, *)``, output the same.

    Raises:
        TypeError: if ``block`` is not a droplab Module.
        ValueError: (in forward) if the block changes the shape.

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> res = Residual(nn.Sequential(nn.Dense(4, 4), nn.ReLU()))
        >>> res.forward(np.ones((2, 4), np.float32)).shape
        (2, 4)
        >>> res.backward(np.ones((2, 4), np.float32)).shape
        (2, 4)
    """

    def __init__(self, block: Module) -> None:
        super().__init__()
        if not isinstance(block, Module):
            raise InvalidTypeError(_validate.message("Residual", "block", "a droplab Module", block))
        self.block = block
        self._shape: tuple[int, ...] | None = None

    def children(self) -> list[Module]:
        return [self.block]

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("Residual", x)
        fx = self.block.forward(x)
        if fx.shape != x.shape:
            raise InvalidValueError(
                f"Residual: the block's output must have its input's shape {x.shape}; got shape {fx.shape}. "
                "Make the block keep the shape (e.g. Conv2d with stride 1 and padding kernel_size // 2)."
            )
        self._shape = x.shape
        return x + fx

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        return dy + self.block.backward(dy)
