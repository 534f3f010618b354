"""The engine's base classes: ``Parameter``, ``Module`` and ``Sequential``.

A ``Module`` has ``forward(x)`` (also ``__call__``) and ``backward(dy)``. ``forward`` keeps
only what ``backward`` needs; ``backward`` returns ``dx`` and ADDS parameter gradients
(penalty gradients included) into ``Parameter.grad``. ``train()`` / ``eval()`` set
``.training`` on the module and all its children, and return the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from droplab import _rng

__all__ = ["Parameter", "Module", "Sequential"]


class Parameter:
    """A trainable array and the gradient accumulated into it.

    Attributes:
        value: the array (float32 or float64).
        grad: an array of the same shape and dtype; ``backward`` adds into it.
        name: a short label (``"weight"``, ``"bias"``) for messages and files.
    """

    __slots__ = ("value", "grad", "name")

    def __init__(self, value: np.ndarray, name: str = "") -> None:
        self.value = value
        self.grad = np.zeros_like(value)
        self.name = name

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.value.shape}, dtype={self.value.dtype})"


class Module:
    """Base class of every layer, loss-free container and model.

    Subclasses implement ``forward`` and ``backward``, list their parameters in
    ``_parameters()`` and their sub-modules in ``children()``. A random module also implements
    ``_reseed(seed_sequence)`` so a container built with ``seed=`` can seed it.
    """

    training: bool = True
    #: True for the dropout family (the layers MC dropout switches on); False for the rest.
    is_dropout: bool = False

    def __init__(self) -> None:
        self.training = True
        self._explicit_seed = False
        self._fit_seed: np.random.SeedSequence | None = None

    # -- the computation -------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _no_forward(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__}: backward() was called before forward(); "
            "run a forward pass on this layer first."
        )

    # -- structure ---------------------------------------------------------------------------
    def children(self) -> list[Module]:
        """Direct sub-modules (none for a plain layer)."""
        return []

    def modules(self) -> Iterator[Module]:
        """This module and every sub-module, depth first, in construction order."""
        yield self
        for child in self.children():
            yield from child.modules()

    def _parameters(self) -> list[Parameter]:
        """This module's own parameters (not its children's)."""
        return []

    def parameters(self) -> list[Parameter]:
        """Every trainable parameter of the module and its children."""
        return [p for m in self.modules() for p in m._parameters()]

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero."""
        for p in self.parameters():
            p.grad.fill(0)

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and all children; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode on this module and all children; returns self."""
        return self.train(False)

    def _buffers(self) -> dict[str, np.ndarray]:
        """This module's own non-trainable state arrays (e.g. BatchNorm running statistics), by
        name: the live arrays, which model files save and ``nn.load`` fills in place. None here."""
        return {}

    def _penalty(self) -> float:
        """This module's own regularisation loss (L1/L2 terms); 0 for most layers."""
        return 0.0

    def regularization_loss(self) -> float:
        """The sum of every layer's regularisation penalty."""
        return float(sum(m._penalty() for m in self.modules()))

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        """Re-seed this module's randomness from ``ss``.

        A leaf with randomness (initial weights, masks) overrides this. The default, for
        containers, hands child ``i + 1`` of ``ss`` to the ``i``-th direct sub-module (child 0
        is kept for ``fit``'s shuffling); sub-modules given their own ``seed=`` keep it.
        """
        kids = ss.spawn(len(self.children()) + 1)
        self._fit_seed = kids[0]
        for child, kid in zip(self.children(), kids[1:]):
            if not child._explicit_seed:
                child._reseed(kid)

    def seed(self, seed: _rng.Seed) -> Module:
        """Seed this module and its random sub-modules reproducibly; returns self."""
        self._reseed(_rng.seed_sequence(seed, type(self).__name__))
        self._explicit_seed = True
        return self

    # -- configuration, for repr and model files --------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (without its weights)."""
        return dict(getattr(self, "_config", {}))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "seed")

    def __repr__(self) -> str:
        kids = self.children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        inner = "\n".join("  " + repr(k).replace("\n", "\n  ") for k in kids)
        return f"{type(self).__name__}(\n{inner}\n)"

    # -- training, evaluation, files (implemented in train.py and io.py) ---------------------
    def fit(self, X, y, **kwargs) -> dict[str, list[float]]:
        """Train the model; see :func:`droplab.nn.train.fit`."""
        from droplab.nn.train import fit

        return fit(self, X, y, **kwargs)

    def predict(self, X, *, batch_size: int | None = None) -> np.ndarray:
        """Eval-mode forward (probabilities for classification); see :func:`droplab.nn.train.predict`."""
        from droplab.nn.train import predict

        return predict(self, X, batch_size=batch_size)

    def save(self, path, *, optimizer=None) -> None:
        """Write this model (and ``optimizer``'s state) to one .npz; see :func:`droplab.nn.io.save`."""
        from droplab.nn.io import save

        save(self, path, optimizer=optimizer)

    def evaluate(self, X, y, loss, *, batch_size: int | None = None) -> dict[str, float]:
        """Loss (and accuracy for classification) in eval mode; see :func:`droplab.nn.train.evaluate`."""
        from droplab.nn.train import evaluate

        return evaluate(self, X, y, loss, batch_size=batch_size)


class Sequential(Module):
    """Layers applied one after another; backward runs them in reverse.

    Args:
        *layers: the modules, in order.
        seed (int | np.random.Generator | None): if given, every random layer (initial
            weights, dropout masks) gets its own child of ``SeedSequence(seed)`` in
            construction order, and ``fit`` shuffles from another child, so the same code
            with the same seed gives bit-identical results. Layers built with their own
            ``seed=`` keep it. Default None.

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> model = nn.Sequential(nn.Dense(2, 8), nn.ReLU(), nn.Dropout(0.5), nn.Dense(8, 3), seed=0)
        >>> model.forward(np.zeros((4, 2), np.float32)).shape
        (4, 3)
        >>> len(model.parameters())
        4
    """

    def __init__(self, *layers: Module, seed: _rng.Seed = None) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: every layer must be a droplab Module; got layer {i}={layer!r}."
                )
        self.layers = list(layers)
        self._plan: tuple | None = None  # (layer identities, steps): see _steps
        self._ran: list | None = None  # the steps of the last forward, for backward
        if seed is not None:
            self.seed(seed)

    def children(self) -> list[Module]:
        return self.layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def _steps(self) -> list:
        """The layers, with each ``Dense -> ReLU [-> Dropout]`` run as one fused block where
        :mod:`droplab.nn._fused` allows it (same values, fewer passes over memory)."""
        key = tuple((id(m), "forward" in vars(m)) for m in self.layers)
        plan = getattr(self, "_plan", None)
        if plan is None or plan[0] != key:
            from droplab.nn import _fused

            plan = self._plan = (key, _fused.plan(self.layers))
        return plan[1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        steps = self._ran = self._steps()
        for step in steps:
            x = step.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, True)

    def _backward(self, dy: np.ndarray, need_dx: bool):
        """``backward``; with ``need_dx=False`` (inside fit, where the input gradient is never
        read) a first Dense layer skips computing it and None is returned."""
        steps = getattr(self, "_ran", None) or self.layers
        for i in range(len(steps) - 1, -1, -1):
            step = steps[i]
            if i == 0 and not need_dx:
                skip = getattr(step, "_backward", None)
                if skip is not None:
                    return skip(dy, False)
            dy = step.backward(dy)
        return dy
