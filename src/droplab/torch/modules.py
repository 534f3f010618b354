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

Random state follows PyTorch's rules (:mod:`droplab.torch._random`): unseeded modules draw
from torch's generator at each training forward; it is not in ``state_dict()`` (whose keys are
those of the same model with ``torch.nn`` dropout), and travels through
:func:`droplab.torch.get_rng_state` / :func:`~droplab.torch.set_rng_state`.
"""

from __future__ import annotations

import copy
import inspect
import math

import torch

from droplab.errors import InvalidTypeError, InvalidValueError
from droplab import _rng, _validate, family
from droplab.family import Spec
from droplab.family._spec import flag
from droplab.torch import _core, _random

__all__ = [
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "GaussianDropout", "DropPath",
    "LockedDropout", "DropBlock2d", "DropConnect", "DropConnectLinear", "ConcreteDropout", "regularization_loss",
    "variant",
]

SEED_DOC = ("seed (int | np.random.Generator | None): seed of the module's own noise stream (the NumPy "
            "engine's masks for the same seed; under torch.distributed every rank passes the same seed and draws "
            "its own lane). Default None: draw from torch's generator at each training forward, as "
            "torch.nn.Dropout (torch.manual_seed makes it reproducible).\n"
            "    generator (torch.Generator | None): with ``seed=None``, draw from this generator instead of "
            "torch's default one. Default None.")

INPLACE_DOC = ("inplace (bool): write the result into the input and return it, as torch.nn's ``inplace=True`` "
               "(the second positional argument, as in torch.nn). Default False.\n    ")

#: torch.nn's dropout classes droplab has the equivalent of (registry name -> torch.nn class):
#: the same ``p`` and semantics (channels dropped whole, SELU's statistics kept), and torch's
#: ``inplace`` accepted where torch takes it (the modules' second positional argument, the
#: functional forms' fourth). :func:`droplab.torch.patch` maps each class to its equivalent.
TORCH_CLASSES: dict[str, type] = {
    "dropout": torch.nn.Dropout, "dropout1d": torch.nn.Dropout1d, "dropout2d": torch.nn.Dropout2d,
    "dropout3d": torch.nn.Dropout3d, "alpha_dropout": torch.nn.AlphaDropout,
}


#: variants whose torch.nn module accepts and stores ``inplace`` but never writes into its input
#: (torch 2.x: ``nn.AlphaDropout.forward`` calls ``F.alpha_dropout`` without it); droplab's module
#: does the same, while the functional form honours ``inplace`` as ``F.alpha_dropout`` does.
MODULE_IGNORES_INPLACE = frozenset({"alpha_dropout"})


def torch_equivalent(cls: type) -> type | None:
    """The droplab class equivalent to the ``torch.nn`` class ``cls`` (exactly that class, not a
    subclass, whose forward may differ), or None."""
    name = next((n for n, c in TORCH_CLASSES.items() if c is cls), None)
    return None if name is None else variant(name)


def take_inplace(where: str, spec: Spec, args: tuple, kwargs: dict, first: int = 1) -> tuple[tuple, bool]:
    """``(args without inplace, inplace)``: torch's ``inplace`` at positional index ``first`` or
    as a keyword, for the variants of :data:`TORCH_CLASSES` (others leave it to ``bind``'s error)."""
    if spec.name not in TORCH_CLASSES:
        return args, False
    inplace = kwargs.pop("inplace", None)
    if len(args) > first:
        if inplace is not None:
            raise InvalidTypeError(f"{where}() got multiple values for argument 'inplace'")
        inplace, args = args[first], args[:first] + args[first + 1:]
        if len(args) > first:
            raise InvalidTypeError(f"{where}() takes at most {first + 1} positional arguments after self "
                                   f"({len(args) + 1} given)")
    return args, flag("inplace")(where, False if inplace is None else inplace)


_NO_STREAM = ("an unseeded module draws from torch's generator and has no counter; build it with seed= (or call "
              "reseed(seed)) to replay calls")


class _Stateful:
    """What every droplab module shares: where its noise comes from (PyTorch's rules,
    :mod:`droplab.torch._random`), cloning, replication and the refusals of captures that
    would freeze its stream.

    ``rng`` is the module's :class:`~droplab._rng.NoiseStream` when it is seeded, None when it
    draws from torch's generator (``generator=``, or the default one).
    """

    is_dropout = True
    #: fold ``torch.distributed``'s rank into the draw (rule 4); False makes ranks repeat masks
    rank_lanes = True

    def _init_random(self, where: str, seed, generator) -> None:
        generator = _core.check_generator(where, seed, generator)
        self.rng = _core.make_stream(where, seed, None, self.spec)
        self._generator = _random.SharedGenerator(generator)

    @property
    def generator(self) -> torch.Generator | None:
        """The ``torch.Generator`` an unseeded module draws from (None: torch's default)."""
        return self._generator.generator

    @property
    def counter(self) -> int | None:
        """``rng.counter``: the number of the next training call of a seeded module (setting it
        replays a call); None for an unseeded module."""
        return None if self.rng is None else self.rng.counter

    @counter.setter
    def counter(self, value: int) -> None:
        if self.rng is None:
            raise RuntimeError(f"{type(self).__name__}: cannot set `counter`: {_NO_STREAM}.")
        self.rng.seek(value)

    def next_draw(self, x: torch.Tensor):
        """The draw of this training forward (PyTorch's rules, :mod:`droplab.torch._random`)."""
        lane = _random.rank() if self.rank_lanes else 0
        if self.rng is None:
            if self._generator.generator is not None:
                _random.check_not_recomputing(type(self).__name__, False)
            return _random.fresh_draw(self._generator.generator, x.device, lane)
        if _random.capturing():
            name = type(self).__name__
            raise RuntimeError(
                f"{name}: a seeded {name} cannot be captured in training mode: its key and counter are Python "
                "state that the captured graph would freeze (every execution would replay one mask). Build it "
                "with seed=None (it then draws from torch's generator inside the graph), or capture in eval mode.")
        _random.check_not_recomputing(type(self).__name__, True)
        return self.rng.next(lane)

    def reseed(self, seed=None, *, generator: torch.Generator | None = None):
        """Make the module seeded from ``seed`` (counter 0), or unseeded (``seed=None``, drawing
        from ``generator`` or torch's default one); returns self."""
        self._init_random(type(self).__name__, seed, generator)
        return self

    # -- clones, replicas, captures ----------------------------------------------------------------
    def __deepcopy__(self, memo):
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k not in ("rng", "_clones"):
                new.__dict__[k] = copy.deepcopy(v, memo)
        clones = self.__dict__.get("_clones", 0)
        if self.rng is not None:  # a clone never repeats masks, and copying never moves this stream
            self.__dict__["_clones"] = clones + 1
        new.__dict__["rng"] = None if self.rng is None else _random.clone_stream(self.rng, clones)
        return new

    def _replicate_for_data_parallel(self):
        replica = super()._replicate_for_data_parallel()
        if self.rng is not None:  # nn.DataParallel replicates at every step: each replica its own stream,
            replica.rng = self.rng.child()  # a call of the original's (which never draws itself): resumable
        return replica

    def __prepare_scriptable__(self):
        name = type(self).__name__
        raise RuntimeError(f"{name}: torch.jit.script cannot compile droplab modules (their noise stream is Python "
                           "state and their CPU kernel is numba). Use torch.compile(model), where droplab modules "
                           "run eagerly between compiled graphs, or torch.export with unseeded modules.")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        old = state_dict.pop(prefix + "_extra_state", None)  # checkpoints of droplab <= 0.x carried the stream
        if isinstance(old, dict) and "key" in old:
            self.rng = _rng.NoiseStream.from_state(old, type(self).__name__)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _get_name(self) -> str:
        return "droplab." + type(self).__name__  # print(model) tells droplab's modules from torch.nn's

    def __getattr__(self, name: str):
        options = self.__dict__.get("_options")
        if options is not None and name in options:  # the spec's options read as attributes
            return options[name]
        return super().__getattr__(name)

    @property
    def rows_independent(self) -> bool:
        """Whether every row of a batch draws its own noise (the spec's answer; MC stacking)."""
        return self.spec.rows_independent(self._options)


def _engine_doc(spec: Spec) -> str:
    return (INPLACE_DOC if spec.name in TORCH_CLASSES else "") + SEED_DOC


class Dropout(_Stateful, torch.nn.Module):
    __doc__ = family.get("dropout").docstring("torch", _engine_doc(family.get("dropout"))) + """

Attributes:
    rng (droplab._rng.NoiseStream | None): a seeded module's key and call counter (None: unseeded).
    counter (int | None): ``rng.counter``; setting it replays a mask.
"""

    spec: Spec = family.get("dropout")
    inplace = False  # torch.nn's flag, for the variants of TORCH_CLASSES (set by the constructor)

    def __init__(self, *args, seed=None, generator: torch.Generator | None = None, **kwargs) -> None:
        torch.nn.Module.__init__(self)
        where = type(self).__name__
        args, self.inplace = take_inplace(where, type(self).spec, args, kwargs)
        p, self._options = type(self).spec.bind(where, args, kwargs)
        self.p = p
        self._init_random(where, seed, generator)

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
        return ", ".join(parts + (["inplace=True"] if self.inplace else []))

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the noise is drawn at, broadcast over the input; raises for a wrong rank."""
        return self.spec.noise_shape(type(self).__name__, self._options, tuple(shape))

    @torch.compiler.disable  # a graph break: runs eagerly (the stream is Python state)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _core.apply(type(self).__name__, self.spec, self._options, self.p, x, self.training, self.next_draw,
                           self.inplace and self.spec.name not in MODULE_IGNORES_INPLACE)


def _signature(spec: Spec) -> inspect.Signature:
    """The spec's constructor signature, with torch's ``inplace`` second where torch.nn has one."""
    P = inspect.Parameter
    sig = spec.signature([P("seed", P.KEYWORD_ONLY, default=None), P("generator", P.KEYWORD_ONLY, default=None)])
    if spec.name not in TORCH_CLASSES:
        return sig
    params = list(sig.parameters.values())
    return sig.replace(parameters=params[:2] + [P("inplace", P.POSITIONAL_OR_KEYWORD, default=False)] + params[2:])


Dropout.__init__.__signature__ = _signature(Dropout.spec)
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
        raise InvalidValueError(_validate.message("droplab.torch.variant", "name", "an element-wise variant or one with "
                                           "a hand-written torch class", spec.name))

    def __init__(self, *args, seed=None, generator: torch.Generator | None = None, **kwargs) -> None:
        Dropout.__init__(self, *args, seed=seed, generator=generator, **kwargs)

    __init__.__signature__ = _signature(spec)
    cls = type(spec.class_name, (Dropout,), {
        "spec": spec, "__init__": __init__, "__doc__": spec.docstring("torch", _engine_doc(spec)),
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
droplab.DropConnect(in_features=4, out_features=3, bias=True, p=0.5)
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
            raise InvalidTypeError(_validate.message(where, "activation", "a torch.nn.Module or None", activation))
        self.activation = activation
        self._init_random(where, seed, generator)

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
            draw = self.next_draw(x)
            rows = math.prod(x.shape[:-1])
            shape = self.spec.mask_shape(self._options, self.in_features, self.out_features, rows)

            def make(lead):  # (in, out) as the NumPy engine (or (N, in, out)), after any vmap dimensions
                mult, _ = _core.noise_tensors(where, self.spec, self._options, p, draw, lead + shape, W.dtype,
                                              W.device)
                return mult.to(W.dtype)

            M = _core.draw_tensor(x, make, where)
            if len(shape) == 2:
                return self._act(torch.nn.functional.linear(x, W * M.transpose(-1, -2), b))
            u = torch.einsum("ni,nio->no", x, W.T.unsqueeze(0) * M)
            return self._act(u if b is None else u + b)
        mean = torch.nn.functional.linear(x, W, b)
        if self.training or self._options["inference"] == "scale" or p in (0.0, 1.0):
            return self._act(mean)
        sd = torch.sqrt(p / (1 - p) * torch.nn.functional.linear(x * x, W * W))
        samples = self._options["samples"]
        rows = math.prod(x.shape[:-1])
        # a fixed side stream (never the training draws): the layer's own, or one shared by unseeded layers
        z = self.spec.inference_noise(self.rng if self.rng is not None else _UNSEEDED_INFERENCE, rows, samples,
                                      self.out_features)
        z = torch.from_numpy(z).to(device=x.device, dtype=mean.dtype).reshape(*x.shape[:-1], samples,
                                                                             self.out_features)
        return self._act(mean.unsqueeze(-2) + sd.unsqueeze(-2) * z).mean(-2)


DropConnectLinear = DropConnect  # the earlier name
_UNSEEDED_INFERENCE = _rng.NoiseStream.from_seed(0)


# -- ConcreteDropout ----------------------------------------------------------------------------------
def _concrete(x: torch.Tensor, p_logit: torch.Tensor, temperature: float, u: torch.Tensor):
    """``(y, noise, s, p)`` of Concrete dropout in torch operations on the uniforms ``u`` (float64):
    the spec's formula, differentiable to every order in ``x`` and ``p_logit``."""
    logit = p_logit.to(torch.float64)
    z = (logit + torch.log(u) - torch.log1p(-u)) / temperature
    s = 0.5 * (1.0 + torch.tanh(0.5 * z))  # a sigmoid that cannot overflow
    p = torch.sigmoid(logit)
    noise = (1.0 - s) / (1.0 - p)
    work = _core.work_dtype(x.dtype)
    return (x.to(work) * noise.to(work)).to(x.dtype), noise, s, p


class _Concrete(torch.autograd.Function):
    """``x * (1 - s) / (1 - p)`` with the relaxed ``s`` of the spec (the NumPy engine's float64
    formula and gradients), differentiable in ``x`` and ``p_logit``. With ``create_graph`` (or
    under a ``torch.func`` transform) the gradient is the same formula in torch operations, so
    second derivatives are exact."""

    @staticmethod
    def forward(x, p_logit, spec, temperature, draw):
        logit = float(p_logit.detach())
        noise, _ = spec.relaxed(logit, temperature, draw, tuple(x.shape))
        work = _core.work_dtype(x.dtype)
        mult = torch.from_numpy(noise).to(device=x.device, dtype=work)
        return (x.to(work) * mult).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, p_logit, spec, temperature, draw = inputs
        ctx.save_for_backward(x, p_logit)
        ctx.args = (spec, temperature, draw)

    @staticmethod
    def backward(ctx, dy):
        x, p_logit = ctx.saved_tensors
        spec, temperature, draw = ctx.args
        if torch.is_grad_enabled() or not _random.plain(dy):
            u = _core.uniform_tensor(draw, tuple(x.shape), x.device)
            _, noise, s, p = _concrete(x, p_logit, temperature, u)
            work = _core.work_dtype(dy.dtype)
            dx = (dy.to(work) * noise.to(work)).to(dy.dtype)
            dl = (dy.to(torch.float64) * x.to(torch.float64) * noise * (p - s / temperature)).sum()
            return dx, dl.to(p_logit.dtype), None, None, None
        logit = float(p_logit.detach())
        noise, s = spec.relaxed(logit, temperature, draw, tuple(x.shape))
        work = _core.work_dtype(dy.dtype)
        dx = (dy.to(work) * torch.from_numpy(noise).to(device=dy.device, dtype=work)).to(dy.dtype)
        as64 = lambda t: t.detach().to(torch.float64).cpu().numpy()  # noqa: E731
        g = spec.logit_grad(as64(dy), as64(x), noise, s, logit, temperature)
        return dx, torch.tensor(g, dtype=p_logit.dtype, device=p_logit.device), None, None, None


def _wrapped(*tensors) -> bool:
    return any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


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
            raise InvalidTypeError(_validate.message(where, "layer", "a torch.nn.Module or None", type(layer).__name__))
        p = p if init_p is None else init_p
        p, self._options = self.spec.bind(where, (p,), {
            "temperature": temperature, "weight_regularizer": weight_regularizer,
            "dropout_regularizer": dropout_regularizer, "input_dim": input_dim})
        self._init_p = p
        self.layer = layer
        self.p_logit = torch.nn.Parameter(torch.tensor(self.spec.logit_of(p), dtype=torch.float32))
        self._init_random(where, seed, generator)
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
            draw = self.next_draw(x)
            if _random.capturing() or _wrapped(x, self.p_logit):  # torch operations a transform can follow
                shape, device = tuple(x.shape), x.device
                u = _core.draw_tensor(x, lambda lead: _core.uniform_tensor(draw, lead + shape, device),
                                      "ConcreteDropout")
                x = _concrete(x, self.p_logit, self.temperature, u)[0]
            else:
                x = _Concrete.apply(x, self.p_logit, self.spec, self.temperature, draw)
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
