"""The engine's base classes: ``Parameter``, ``Module`` and ``Sequential``.

A ``Module`` has ``forward(x)`` (also ``__call__``) and ``backward(dy)``. ``forward`` keeps
only what ``backward`` needs; ``backward`` returns ``dx`` and ADDS parameter gradients
(penalty gradients included) into ``Parameter.grad``. ``train()`` / ``eval()`` set
``.training`` on the module and all its children, and return the module.

A layer may be called more than once in one forward pass (a Dense used twice for weight
sharing, one dropout shared by two branches). ``forward`` keeps its backward state in the
layer's private attributes (``_x``, ``_state``: a dropout layer's ``(key, counter)``); a
repeated call in the same pass first saves the earlier call's state, and each ``backward``
restores it when it returns, so backward consumes the calls in reverse order, as an autograd
tape does. A pass is everything inside the outermost ``forward`` running in a thread: calling
a layer twice at top level (two passes) keeps one state, the last call's. Public attributes
(a dropout layer's ``counter``, BatchNorm's running statistics) are never rewound. A layer's
L1/L2 penalty gradient is added once per pass (by the backward of its first call), matching
``regularization_loss()``, which counts each layer once.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from droplab import _rng, _validate
from droplab.errors import InvalidTypeError, InvalidValueError

__all__ = ["Parameter", "Module", "Sequential"]


class _Pass(threading.local):
    """The forward pass running in this thread: its id and how deep the forwards are nested."""

    depth = 0
    id = 0


_PASS = _Pass()
_new_pass_id = itertools.count(1).__next__  # global: ids never repeat across threads


def _traced_forward(fn):
    """``forward`` with the tape's bookkeeping: the outermost call opens a new pass, and a
    repeated call of one layer in a pass saves the earlier call's state first."""

    @functools.wraps(fn)
    def forward(self, x, *args, **kwargs):
        if type(self).forward is not forward:  # a subclass's forward calling super().forward()
            return fn(self, x, *args, **kwargs)
        ps = _PASS
        depth = ps.depth
        if not depth:
            ps.id = _new_pass_id()
        if self._tape_pass == ps.id:
            self._tape_push()
        else:
            self._tape_pass = ps.id
            if self._tape_calls:
                self._tape_calls = None
        ps.depth = depth + 1
        try:
            return fn(self, x, *args, **kwargs)
        finally:
            ps.depth = depth

    forward._tape_traced = True
    return forward


def _traced_backward(fn):
    """``backward`` that, once done, restores the state of this layer's previous call in the
    pass, if there was one."""

    @functools.wraps(fn)
    def backward(self, dy, *args, **kwargs):
        dx = fn(self, dy, *args, **kwargs)
        if self._tape_calls and type(self).backward is backward:  # not a super().backward() inside
            self._tape_load(self._tape_calls.pop())
        return dx

    backward._tape_traced = True
    return backward


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


def _as_float(where: str, x: Any) -> np.ndarray:
    """``x`` as a floating array: integer and bool input become float32 (the engine's default
    dtype), so no layer returns truncated integers; anything else non-real is a TypeError."""
    x = np.asarray(x)
    kind = x.dtype.kind
    if kind == "f":
        return x
    if kind in "biu":
        return x.astype(np.float32)
    raise InvalidTypeError(_validate.message(where, "x", "a real-valued array (floating, integer or bool)",
                                             f"array of dtype {x.dtype}"))


class Module:
    """Base class of every layer, loss-free container and model.

    Subclasses implement ``forward`` and ``backward``, list their parameters in
    ``_parameters()`` and their sub-modules in ``children()``. A random module also implements
    ``_reseed(seed_sequence)`` so a container built with ``seed=`` can seed it.
    """

    training: bool = True
    #: True for the dropout family (the layers MC dropout switches on); False for the rest.
    is_dropout: bool = False
    # the tape (see the module docstring): saved states of this pass's earlier calls
    _tape_calls: list | None = None
    _tape_pass = 0

    def __init_subclass__(cls, **kwargs) -> None:
        # every layer gets the tape without writing it: its own forward/backward are wrapped
        # (a ``_backward`` helper is not: callers of it run ``_tape_exit`` themselves)
        super().__init_subclass__(**kwargs)
        for name, wrap in (("forward", _traced_forward), ("backward", _traced_backward)):
            fn = cls.__dict__.get(name)
            if callable(fn) and not getattr(fn, "_tape_traced", False):
                setattr(cls, name, wrap(fn))

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

    # -- the tape: one saved state per repeated call in a pass ----------------------------------
    def _tape_enter(self, pass_id: int) -> None:
        """Called as a forward starts: save the previous call's state if this layer already ran
        in this pass; otherwise drop what an earlier pass left."""
        if self._tape_pass == pass_id:
            self._tape_push()
        else:
            self._tape_pass = pass_id
            if self._tape_calls:
                self._tape_calls = None

    def _tape_push(self) -> None:
        if self._tape_calls is None:
            self._tape_calls = []
        self._tape_calls.append(self._tape_save())

    def _tape_exit(self) -> None:
        """Called as a backward returns: the previous call's state becomes the live one."""
        calls = self._tape_calls
        if calls:
            self._tape_load(calls.pop())

    def _tape_save(self) -> Any:
        """What backward needs from the last call: the private attributes forward wrote."""
        return {k: v for k, v in vars(self).items() if k[0] == "_" and not k.startswith("_tape")}

    def _tape_load(self, saved: Any) -> None:
        vars(self).update(saved)

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
        """This module and every sub-module, depth first, in construction order; a module
        reached twice (a shared layer) is yielded once."""
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack.extend(reversed(m.children()))

    def _parameters(self) -> list[Parameter]:
        """This module's own parameters (not its children's)."""
        return []

    def parameters(self) -> list[Parameter]:
        """Every trainable parameter of the module and its children, each once (a shared
        layer's parameters are stepped once per update)."""
        params = [p for m in self.modules() for p in m._parameters()]
        if len({id(p) for p in params}) == len(params):
            return params
        seen: set[int] = set()
        return [p for p in params if not (id(p) in seen or seen.add(id(p)))]

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
        """Write this model (and ``optimizer``'s state) to one .npz; see :func:`droplab.nn.io.save`.

        Raises:
            ValueError: the model uses one layer object in more than one place (model files
                cannot hold shared layers: the file would not load back).
        """
        from droplab.nn.io import save

        _check_unshared("save", self)
        save(self, path, optimizer=optimizer)

    def evaluate(self, X, y, loss, *, batch_size: int | None = None) -> dict[str, float]:
        """Loss (and accuracy for classification) in eval mode; see :func:`droplab.nn.train.evaluate`."""
        from droplab.nn.train import evaluate

        return evaluate(self, X, y, loss, batch_size=batch_size)


def _check_unshared(where: str, model: Module) -> None:
    """Refuse a model that uses one module object in two places, before writing a model file:
    the file format names each layer once per place, so weight sharing would not load back."""
    seen: dict[int, int] = {}
    stack = [model]
    while stack:
        m = stack.pop()
        seen[id(m)] = seen.get(id(m), 0) + 1
        if seen[id(m)] == 2:
            raise InvalidValueError(_validate.message(
                where, "model", "a model that uses each layer object once", f"a {type(m).__name__} used twice",
                "Model files cannot hold shared layers (weight sharing); save the weights with numpy instead."))
        if seen[id(m)] == 1:
            stack.extend(m.children())


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
                raise InvalidTypeError(
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
        return self._planned()[1]

    def _planned(self) -> tuple:
        """``(key, steps, fused)``: ``fused[i]`` is the layers of step ``i`` when it is a fused
        block (their tape is kept here, since the block bypasses their forward), else None."""
        key = tuple((id(m), "forward" in vars(m)) for m in self.layers)
        plan = getattr(self, "_plan", None)
        if plan is None or plan[0] != key:
            from droplab.nn import _fused

            steps = _fused.plan(self.layers)
            fused = [None if isinstance(st, Module) else tuple(m for m in (st.dense, st.relu, st.drop)
                                                               if m is not None) for st in steps]
            plan = self._plan = (key, steps, fused if any(fused) else None)
        return plan

    def forward(self, x: np.ndarray) -> np.ndarray:
        _, steps, fused = self._planned()
        self._ran = steps
        if fused is None:
            for step in steps:
                x = step.forward(x)
            return x
        pass_id = _PASS.id
        for step, layers in zip(steps, fused):
            if layers is not None:  # a block writes its layers' state: save a repeated call's first
                for m in layers:
                    m._tape_enter(pass_id)
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
                    dy = skip(dy, False)
                    if isinstance(step, Module):
                        step._tape_exit()  # backward() does this itself; _backward() does not
                    else:
                        _block_exit(step)
                    return dy
            dy = step.backward(dy)
            if not isinstance(step, Module):
                _block_exit(step)
        return dy

    def _tape_save(self) -> Any:
        # a fused block keeps its own state (not the layers'): save it with the Sequential's
        blocks = [(st, [getattr(st, a) for a in st.__slots__]) for st in (self.__dict__.get("_ran") or ())
                  if not isinstance(st, Module)]
        return super()._tape_save(), blocks

    def _tape_load(self, saved: Any) -> None:
        own, blocks = saved
        super()._tape_load(own)
        for st, values in blocks:
            for a, v in zip(st.__slots__, values):
                setattr(st, a, v)


def _block_exit(block) -> None:
    """A fused block's backward returned: each of its layers' tapes moves back one call."""
    for m in (block.drop, block.relu, block.dense):
        if m is not None:
            m._tape_exit()
