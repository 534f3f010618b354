"""The dropout family as ``torch.nn.Module`` classes, built from :mod:`droplab.family`.

``Dropout`` is the one mechanism: it holds a spec's ``p`` and options and a
:class:`droplab._rng.NoiseStream` (from ``seed=`` exactly as the NumPy engine's layers, or from
a ``torch.Generator``), and each training forward applies the spec's noise for the stream's
next draw (:func:`droplab.torch._core.apply`, which the functional forms call too). Every
element-wise variant is generated from its spec by :func:`variant`, so its constructor,
checks, defaults, ``config()``, noise and docstring are the NumPy engine's.
``DropConnect`` (a ``torch.nn.Linear`` whose weights are dropped; alias ``DropConnectLinear``)
and ``ConcreteDropout`` (a learned ``p``) are written here around their specs. ``p`` is always
the probability of zeroing (not the keep probability).

The stream's state travels in ``state_dict()`` (as extra state), so a reloaded model replays
the same masks.
"""

from __future__ import annotations

import inspect
import math

import torch

from droplab import _rng, _validate, family
from droplab.family import Spec
from droplab.torch import _core

__all__ = [
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "GaussianDropout", "DropPath",
    "LockedDropout", "DropBlock2d", "DropConnect", "DropConnectLinear", "ConcreteDropout", "regularization_loss",
    "variant",
]

SEED_DOC = ("seed (int | np.random.Generator | None): seed of the noise (the NumPy engine's masks for the same "
            "seed). Default None (fresh entropy).\n"
            "    generator (torch.Generator | None): draw the stream's key from this generator instead of ``seed``.")


class _Stateful:
    """What every droplab module shares: the stream, the counter and the stream's state."""

    is_dropout = True

    @property
    def counter(self) -> int:
        """``rng.counter``: the number of training forwards so far; setting it replays a call."""
        return self.rng.counter

    @counter.setter
    def counter(self, value: int) -> None:
        self.rng.seek(value)

    def get_extra_state(self):
        return self.rng.state()

    def set_extra_state(self, state) -> None:
        self.rng = _rng.NoiseStream.from_state(state, type(self).__name__)

    def reseed(self, seed=None, *, generator: torch.Generator | None = None):
        """A new stream from ``seed`` / ``generator`` (counter 0); returns self."""
        self.rng = _core.make_stream(type(self).__name__, seed, generator, self.spec)
        return self

    def __getattr__(self, name: str):
        options = self.__dict__.get("_options")
        if options is not None and name in options:  # the spec's options read as attributes
            return options[name]
        return super().__getattr__(name)

    @property
    def rows_independent(self) -> bool:
        """Whether every row of a batch draws its own noise (the spec's answer; MC stacking)."""
        return self.spec.rows_independent(self._options)


class Dropout(_Stateful, torch.nn.Module):
    __doc__ = family.get("dropout").docstring("torch", SEED_DOC) + """

Attributes:
    rng (droplab._rng.NoiseStream): the module's key and call counter.
    counter (int): ``rng.counter``; setting it replays a mask.
"""

    spec: Spec = family.get("dropout")

    def __init__(self, *args, seed=None, generator: torch.Generator | None = None, **kwargs) -> None:
        torch.nn.Module.__init__(self)
        where = type(self).__name__
        p, self._options = type(self).spec.bind(where, args, kwargs)
        self.p = p
        self.rng = _core.make_stream(where, seed, generator, self.spec)

    @property
    def p(self) -> float:
        """The drop probability (validated on assignment; rate schedules set it)."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = self.spec.check_p(type(self).__name__, value)

    def config(self) -> dict:
        """Constructor arguments (the spec's): ``p`` and the options."""
        return {"p": self.p, **self._options}

    def extra_repr(self) -> str:
        defaults = {o.name: o.default for o in self.spec.options}
        parts = [f"p={self.p:g}"] + [f"{k}={v!r}" for k, v in self._options.items() if v != defaults[k]]
        return ", ".join(parts)

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the noise is drawn at, broadcast over the input; raises for a wrong rank."""
        return self.spec.noise_shape(type(self).__name__, self._options, tuple(shape))

    @torch.compiler.disable  # a graph break: runs eagerly (the stream is Python state)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _core.apply(type(self).__name__, self.spec, self._options, self.p, x, self.training, self.rng.next)


_P = inspect.Parameter
Dropout.__init__.__signature__ = Dropout.spec.signature([_P("seed", _P.KEYWORD_ONLY, default=None),
                                                          _P("generator", _P.KEYWORD_ONLY, default=None)])
_CLASSES: dict[Spec, type] = {Dropout.spec: Dropout}


def _register_class(cls: type) -> type:
    _CLASSES[cls.spec] = cls
    return cls


def variant(name: str | Spec) -> type:
    """The ``torch.nn.Module`` class of a registered variant (registry name, class name or spec);
    an element-wise variant's class is generated from its spec on first use."""
    spec = name if isinstance(name, Spec) else family.get(name)
    cls = _CLASSES.get(spec)
    if cls is not None:
        return cls
    if spec.kind != "noise":
        raise ValueError(_validate.message("droplab.torch.variant", "name", "an element-wise variant or one with "
                                           "a hand-written torch class", spec.name))

    def __init__(self, *args, seed=None, generator: torch.Generator | None = None, **kwargs) -> None:
        Dropout.__init__(self, *args, seed=seed, generator=generator, **kwargs)

    P = inspect.Parameter
    __init__.__signature__ = spec.signature([P("seed", P.KEYWORD_ONLY, default=None),
                                             P("generator", P.KEYWORD_ONLY, default=None)])
    cls = type(spec.class_name, (Dropout,), {
        "spec": spec, "__init__": __init__, "__doc__": spec.docstring("torch", SEED_DOC),
        "__module__": __name__, "__qualname__": spec.class_name})
    _CLASSES[spec] = cls
    return cls


Dropout1d = variant("dropout1d")
Dropout2d = variant("dropout2d")
Dropout3d = variant("dropout3d")
DropPath = variant("drop_path")
LockedDropout = variant("locked_dropout")
GaussianDropout = variant("gaussian_dropout")
AlphaDropout = variant("alpha_dropout")
DropBlock2d = variant("drop_block2d")


# -- DropConnect ------------------------------------------------------------------------------------
_DC_DOC = """in_features, out_features (int): as ``torch.nn.Linear``.
    bias (bool): add a bias (never dropped). Default True.
    activation (torch.nn.Module | None): applied after the affine map. Default None.
    """ + SEED_DOC + """
    device, dtype: as ``torch.nn.Linear``."""

_DC_EXAMPLE = """
>>> import torch
>>> layer = DropConnect(4, 3, p=0.5, seed=0)
>>> layer(torch.ones(2, 4)).shape
torch.Size([2, 3])
>>> layer
DropConnect(in_features=4, out_features=3, bias=True, p=0.5)
"""


@_register_class
class DropConnect(_Stateful, torch.nn.Linear):
    __doc__ = family.get("drop_connect").docstring("torch", _DC_DOC, _DC_EXAMPLE)

    spec = family.get("drop_connect")

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True, *,
                 per: str = "batch", inference: str = "scale", samples: int = 100,
                 activation: torch.nn.Module | None = None, seed=None, generator: torch.Generator | None = None,
                 device=None, dtype=None) -> None:
        where = "DropConnect"
        torch.nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        p, self._options = self.spec.bind(where, (p,), {"per": per, "inference": inference, "samples": samples})
        self.p = p
        if activation is not None and not isinstance(activation, torch.nn.Module):
            raise TypeError(_validate.message(where, "activation", "a torch.nn.Module or None", activation))
        self.activation = activation
        self.rng = _core.make_stream(where, seed, generator, self.spec)

    p = Dropout.p

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "p": self.p, **self._options,
                "bias": self.bias is not None}

    def extra_repr(self) -> str:
        defaults = {o.name: o.default for o in self.spec.options}
        return ", ".join([super().extra_repr(), f"p={self.p:g}"]
                         + [f"{k}={v!r}" for k, v in self._options.items() if v != defaults[k]])

    def _act(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.activation is None else self.activation(u)

    @torch.compiler.disable  # a graph break: runs eagerly (the stream is Python state)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        where = "DropConnect"
        x = _core.check_input(where, x)
        self.spec.input_shape(where, self._options, tuple(x.shape), self.in_features)
        W, b, p = self.weight, self.bias, self.p
        if self.training and p > 0:
            draw = self.rng.next()
            rows = math.prod(x.shape[:-1])
            shape = self.spec.mask_shape(self._options, self.in_features, self.out_features, rows)
            mask = draw.mask_values(shape, p, self.spec.scale(self._options, p), _core._np(W.dtype))
            M = torch.from_numpy(mask).to(device=W.device, dtype=W.dtype)  # (in, out) as the NumPy engine
            if M.ndim == 2:
                return self._act(torch.nn.functional.linear(x, W * M.T, b))
            u = torch.einsum("ni,nio->no", x, W.T.unsqueeze(0) * M)
            return self._act(u if b is None else u + b)
        mean = torch.nn.functional.linear(x, W, b)
        if self.training or self._options["inference"] == "scale" or p in (0.0, 1.0):
            return self._act(mean)
        sd = torch.sqrt(p / (1 - p) * torch.nn.functional.linear(x * x, W * W))
        samples = self._options["samples"]
        rows = math.prod(x.shape[:-1])
        z = self.spec.inference_noise(self.rng, rows, samples, self.out_features)
        z = torch.from_numpy(z).to(device=x.device, dtype=mean.dtype).reshape(*x.shape[:-1], samples,
                                                                             self.out_features)
        return self._act(mean.unsqueeze(-2) + sd.unsqueeze(-2) * z).mean(-2)


DropConnectLinear = DropConnect  # the earlier name


# -- ConcreteDropout ----------------------------------------------------------------------------------
class _Concrete(torch.autograd.Function):
    """``x * (1 - s) / (1 - p)`` with the relaxed ``s`` of the spec (the NumPy engine's float64
    formula and gradients), differentiable in ``x`` and ``p_logit``."""

    @staticmethod
    def forward(ctx, x, p_logit, spec, temperature, draw):
        logit = float(p_logit.detach())
        noise, _ = spec.relaxed(logit, temperature, draw, tuple(x.shape))
        ctx.save_for_backward(x)
        ctx.args = (spec, temperature, draw, logit)
        work = _core.work_dtype(x.dtype)
        mult = torch.from_numpy(noise).to(device=x.device, dtype=work)
        return (x.to(work) * mult).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        spec, temperature, draw, logit = ctx.args
        noise, s = spec.relaxed(logit, temperature, draw, tuple(x.shape))
        work = _core.work_dtype(dy.dtype)
        dx = (dy.to(work) * torch.from_numpy(noise).to(device=dy.device, dtype=work)).to(dy.dtype)
        as64 = lambda t: t.detach().to(torch.float64).cpu().numpy()  # noqa: E731
        g = spec.logit_grad(as64(dy), as64(x), noise, s, logit, temperature)
        return dx, torch.tensor(g, dtype=torch.float32), None, None, None


_CONCRETE_DOC = """layer (torch.nn.Module | None): the layer the dropped input feeds (its parameters enter
        the weight term). Default None (dropout alone).
    """ + SEED_DOC + """
    init_p (float | None): deprecated alias of ``p``."""

_CONCRETE_EXAMPLE = """
>>> import torch
>>> cd = ConcreteDropout(torch.nn.Linear(5, 2), p=0.2, seed=0)
>>> out = cd(torch.ones(8, 5))
>>> (out.sum() + cd.regularization_loss()).backward()
>>> round(cd.p, 4), cd.p_logit.grad is not None
(0.2, True)
"""


@_register_class
class ConcreteDropout(_Stateful, torch.nn.Module):
    __doc__ = family.get("concrete_dropout").docstring("torch", _CONCRETE_DOC, _CONCRETE_EXAMPLE).replace(
        "(added to ``regularization_loss()``", "(:meth:`regularization_loss`")

    spec = family.get("concrete_dropout")

    def __init__(self, layer: torch.nn.Module | None = None, *, p: float = 0.1, temperature: float = 0.1,
                 weight_regularizer: float = 1e-6, dropout_regularizer: float = 1e-5, input_dim: int | None = None,
                 seed=None, generator: torch.Generator | None = None, init_p: float | None = None) -> None:
        torch.nn.Module.__init__(self)
        where = "ConcreteDropout"
        if layer is not None and not isinstance(layer, torch.nn.Module):
            raise TypeError(_validate.message(where, "layer", "a torch.nn.Module or None", type(layer).__name__))
        p = p if init_p is None else init_p
        p, self._options = self.spec.bind(where, (p,), {
            "temperature": temperature, "weight_regularizer": weight_regularizer,
            "dropout_regularizer": dropout_regularizer, "input_dim": input_dim})
        self._init_p = p
        self.layer = layer
        self.p_logit = torch.nn.Parameter(torch.tensor(self.spec.logit_of(p), dtype=torch.float32))
        self.rng = _core.make_stream(where, seed, generator, self.spec)
        self._features = 0

    @property
    def p(self) -> float:
        """The current drop probability ``sigmoid(p_logit)``."""
        return self.spec.p_of(float(self.p_logit.detach()))

    def config(self) -> dict:
        return {"p": self._init_p, **self._options}

    @property
    def input_dim(self) -> int:
        """``D`` of the dropout term: the option, else the layer's ``in_features``, else the
        features per row of the last training input (0 before one)."""
        d = self._options["input_dim"]
        return d if d is not None else getattr(self.layer, "in_features", None) or self._features

    @torch.compiler.disable  # a graph break: runs eagerly (the stream is Python state)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _core.check_input("ConcreteDropout", x)
        if self.training:
            self._features = int(math.prod(x.shape[1:])) if x.ndim > 1 else int(x.shape[0]) if x.ndim else 1
            x = _Concrete.apply(x, self.p_logit, self.spec, self.temperature, self.rng.next())
        return x if self.layer is None else self.layer(x)

    def regularization_loss(self) -> torch.Tensor:
        """The paper's weight and dropout terms (a scalar tensor, differentiable in ``p``): the
        spec's :meth:`~droplab.family.variants.ConcreteSpec.penalty` in torch operations."""
        p = torch.sigmoid(self.p_logit.double())
        params = list(self.layer.parameters()) if self.layer is not None else []
        weights = sum((w.double().pow(2).sum() for w in params), torch.zeros((), dtype=torch.float64))
        entropy_term = p * torch.log(p) + (1 - p) * torch.log1p(-p)
        return (self.weight_regularizer * weights / (1 - p)
                + self.dropout_regularizer * self.input_dim * entropy_term).float()

    def extra_repr(self):
        return f"p={self.p:.4g} (learned), temperature={self.temperature:g}"


def regularization_loss(model: torch.nn.Module) -> torch.Tensor:
    """Sum of every :class:`ConcreteDropout`'s regularisation term in ``model`` (0 if none)."""
    terms = [m.regularization_loss() for m in model.modules() if isinstance(m, ConcreteDropout)]
    return sum(terms, torch.zeros(()))
