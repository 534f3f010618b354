"""MC dropout for PyTorch models: switch on only the dropout family, predict, patch.

Example:
    >>> import torch
    >>> from droplab import torch as dt
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
    ...                             torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    >>> model = dt.patch(model, dt.Dropout, seed=0).eval()
    >>> model[3]
    droplab.Dropout(p=0.3)
    >>> with dt.enable_mc_dropout(model):
    ...     print(model[1].training, model[3].training)
    False True
    >>> print(model[3].training)
    False
    >>> pred = dt.mc_predict(model, torch.randn(5, 4), samples=20, seed=0)
    >>> pred.mean.shape, pred.entropy.shape, bool(torch.allclose(pred.mean.sum(1), torch.ones(5, dtype=torch.float64)))
    (torch.Size([5, 3]), torch.Size([5]), True)
    >>> pred.kind, pred.T, pred.stacked
    ('classification', 20, True)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from droplab import _rng, _validate
from droplab.errors import InvalidTypeError, InvalidValueError
from droplab.mc import MCResult, Stats, check_samples, deterministic, outputs, result

__all__ = ["is_dropout", "enable_mc_dropout", "MCResult", "MCPrediction", "mc_predict", "patch", "Replacement"]

_log = logging.getLogger("droplab.torch")


def is_dropout(module: torch.nn.Module) -> bool:
    """True for droplab's dropout family and ``torch.nn``'s Dropout*, AlphaDropout, FeatureAlphaDropout."""
    return bool(getattr(type(module), "is_dropout", False)) or isinstance(module, torch.nn.modules.dropout._DropoutNd)


def _check_model(where: str, model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise InvalidTypeError(_validate.message(where, "model", "a torch.nn.Module", type(model).__name__))
    return model


def _mha():
    mha = getattr(torch.backends, "mha", None)
    return mha if mha is not None and hasattr(mha, "set_fastpath_enabled") else None


# One process-wide count of active enable_mc_dropout handles: the first to start saves the
# user's fast-path setting and switches the path off; the last to finish puts the saved setting
# back, whatever order the handles are released in.
_fastpath_lock = threading.Lock()
_fastpath_active = 0
_fastpath_saved: bool | None = None


def _acquire_fastpath() -> None:
    """Count one more active handle; the first switches PyTorch's fused transformer path (which
    skips dropout modules in evaluation mode) off, saving the user's setting."""
    global _fastpath_active, _fastpath_saved
    with _fastpath_lock:
        mha = _mha()
        if _fastpath_active == 0 and mha is not None:
            _fastpath_saved = bool(mha.get_fastpath_enabled())
        _fastpath_active += 1
        if mha is not None:
            mha.set_fastpath_enabled(False)


def _release_fastpath() -> None:
    """Count one handle fewer; the last gives the fast path back the setting the first saved."""
    global _fastpath_active, _fastpath_saved
    with _fastpath_lock:
        _fastpath_active -= 1
        if _fastpath_active == 0:
            mha = _mha()
            if mha is not None and _fastpath_saved is not None:
                mha.set_fastpath_enabled(_fastpath_saved)
            _fastpath_saved = None


class enable_mc_dropout:
    """Put only the dropout-family modules of ``model`` in training mode; every other module
    (BatchNorm, ...) in eval. Usable as a context manager, which restores every module's mode
    on exit, also on error; or call :meth:`restore` yourself.

    It never calls ``model.train()`` (that would switch BatchNorm to batch statistics: the
    bug Keras users hit, keras #9412). While it is on, PyTorch's fused transformer path
    (``torch.backends.mha`` fast path: ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``
    and ``nn.TransformerEncoder``'s nested tensors, which run in evaluation mode under
    ``no_grad`` and never call their dropout modules) is switched off, so those dropout modules
    sample too. The switch is counted across the process: the first active handle saves your
    setting and turns the path off, the last one released (in any order) puts your setting back. Only dropout *modules* sample: dropout given as a
    float (``nn.MultiheadAttention``'s attention ``dropout``, ``nn.LSTM``'s ``dropout``) follows
    its owner's mode, evaluation.

    Args:
        model (torch.nn.Module): the network.

    Attributes:
        count (int): how many dropout modules were switched on.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5))
        >>> with enable_mc_dropout(net) as mc:
        ...     print(mc.count, net[0].training, net[1].training)
        1 False True
        >>> net[0].training, net[1].training
        (True, True)
    """

    def __init__(self, model: torch.nn.Module) -> None:
        _check_model("enable_mc_dropout", model)
        self._saved = [(m, m.training) for m in model.modules()]
        self.count = 0
        for m, _ in self._saved:
            on = is_dropout(m)
            m.training = on
            self.count += on
        _acquire_fastpath()
        self._active = True

    def restore(self) -> None:
        """Give every module back the mode it had, and the transformer fast path its setting
        (idempotent)."""
        for m, mode in self._saved:
            m.training = mode
        if self._active:
            self._active = False
            _release_fastpath()

    def __enter__(self) -> enable_mc_dropout:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


MCPrediction = MCResult  # the earlier name


def _sampling_forward_known(m: torch.nn.Module) -> bool:
    """True when ``m``'s training forward is one droplab or torch.nn knows the noise of."""
    from droplab.torch.modules import ConcreteDropout, DropConnect, Dropout, _Stateful

    if isinstance(m, _Stateful):
        return type(m).forward in (Dropout.forward, DropConnect.forward, ConcreteDropout.forward)
    return type(m) in _TORCH_PER_ROW


_TORCH_PER_ROW = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
                  torch.nn.FeatureAlphaDropout)


def _rows_independent(m: torch.nn.Module) -> bool:
    """Whether ``m`` draws independent noise for every row of its batch: droplab's modules
    answer from their spec; ``torch.nn``'s dropouts draw per element or per (sample, channel);
    anything else is assumed not to (the passes then run one by one)."""
    if not _sampling_forward_known(m):
        return False
    return bool(getattr(m, "rows_independent", True))


def _samples_nothing(m: torch.nn.Module) -> bool:
    return _sampling_forward_known(m) and not hasattr(m, "p_logit") and float(m.p) == 0.0


def mc_predict(model: torch.nn.Module, x: torch.Tensor, samples: int = 50, seed=None, batch_size: int | None = None,
               keep_samples: bool | None = None, tau: float | None = None, *, output: str = "logits") -> MCResult:
    """MC dropout prediction: ``samples`` stochastic passes with only dropout modules sampling.

    The semantics of :func:`droplab.nn.mc_predict`, on a PyTorch model, with the same
    :class:`~droplab.mc.MCResult` (its arrays as float64 tensors on ``x``'s device).
    ``p`` of the dropout modules is the probability that a unit is zeroed; each pass is a
    training-mode forward of the dropout modules only (:class:`enable_mc_dropout`: BatchNorm and
    every other module stay in eval mode, ``model.train()`` is never called) under
    ``torch.no_grad``, with PyTorch's fused transformer path switched off (in evaluation mode
    it never calls the dropout modules of ``nn.TransformerEncoderLayer``); every module's mode,
    and that switch, are restored afterwards, also on error. Only dropout modules sample:
    dropout given as a float (``nn.MultiheadAttention``'s attention ``dropout``, ``nn.LSTM``'s
    ``dropout``) stays off, as its owner is in evaluation mode.

    The passes are batched: a chunk of inputs is tiled ``samples`` times along the batch axis
    and runs as one forward, which gives each copy its own noise only when EVERY sampling
    module draws row-independent noise (droplab's modules answer from their spec,
    ``rows_independent``; ``torch.nn``'s dropouts do). Otherwise (``axes`` sharing axis 0,
    ``DropPath(mode="batch")``, ``DropBlock2d``, ``DropConnect(per="batch")``, an unknown
    module) the passes run one by one. When no module samples (every dropout at ``p = 0``)
    one evaluation-mode forward gives every pass, and ``std``, ``mutual_information`` and
    ``variation_ratio`` are exactly 0.

    Randomness: with ``seed`` (int | numpy Generator), droplab's modules draw from temporary
    streams derived from it (the i-th module the i-th child of ``SeedSequence(seed)``) and
    ``torch.nn``'s from a forked torch generator seeded from it; the model's own streams and
    torch's generators are left exactly as they were, and the same seed, model, inputs,
    ``samples`` and chunking give bit-identical results. With ``seed=None`` the modules draw as
    training forwards do (seeded ones advance their streams, unseeded ones draw from torch's
    generator), as :func:`droplab.nn.mc_predict` does.

    Args:
        model (torch.nn.Module): the network, with at least one dropout module.
        x (torch.Tensor): inputs ``(N, ...)``.
        samples (int): number of passes ``T``, 1 to :data:`droplab.mc.MAX_SAMPLES`. Default 50.
        seed (int | np.random.Generator | None): see Randomness. Default None.
        batch_size (int | None): inputs per stacked forward (each chunk runs ``T`` times as
            many rows); None (default): as many as keep a forward within 65536 rows.
        keep_samples (bool | None): keep the ``(T, N, K)`` passes (True) or not (False; the
            statistics are the same). None (default): keep them when they take at most
            :data:`droplab.nn.mc.SAMPLES_BUDGET` bytes.
        tau (float | None): model precision for regression (``output="raw"``): adds ``1 / tau``
            to the predictive variance. Default None.
        output (str): what the model returns: ``"logits"`` (softmax applied; classification,
            the default), ``"probs"`` (classification, taken as they are) or ``"raw"``
            (regression).

    Returns:
        :class:`~droplab.mc.MCResult`.

    Raises:
        ValueError: ``samples`` < 1 or too many, bad ``batch_size``/``output``/``tau``, or no
            dropout module.
        TypeError: ``model`` not a Module or ``x`` not a tensor; a bad ``seed`` or ``keep_samples``.
    """
    from droplab.nn.mc import SAMPLES_BUDGET
    from droplab.torch.modules import _Stateful

    where = "mc_predict"
    _check_model(where, model)
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(_validate.message(where, "x", "a torch.Tensor", type(x).__name__))
    T = check_samples(where, samples, keep_samples)
    output = _validate.one_of(where, "output", output, ("logits", "probs", "raw"))
    if batch_size is not None:
        batch_size = _validate.positive_int(where, "batch_size", batch_size)
    if tau is not None:
        tau = _validate.positive_float(where, "tau", tau)
    _rng.check_seed(where, seed)
    drops = [m for m in model.modules() if is_dropout(m)]
    if not drops:
        raise InvalidValueError(_validate.message(where, "model", "a model with at least one dropout module",
                                           type(model).__name__, "Add dropout, or use droplab.torch.patch()."))
    classification = output != "raw"
    n = int(x.shape[0])
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(x.device)  # noqa: E731

    def passes(inputs, t):
        y = model(inputs.repeat(t, *([1] * (x.ndim - 1))) if t > 1 else inputs)
        y = torch.softmax(y, -1) if output == "logits" else y
        return outputs(y.detach().to(torch.float64).cpu().numpy(), t, len(inputs), classification)

    if all(_samples_nothing(m) for m in drops):
        was = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with torch.no_grad():
                out = passes(x, 1)[0]
        finally:
            for m, mode in was:
                m.training = mode
        return deterministic(out, T, classification, keep_samples, tau, SAMPLES_BUDGET).map(to_tensor)

    stacked = all(_rows_independent(m) for m in drops)
    if batch_size is not None:
        per_chunk = batch_size
    else:
        per_chunk = max(1, (1 << 16) // T) if stacked else max(n, 1)
    t_chunk = T if stacked else 1
    ours = [m for m in drops if isinstance(m, _Stateful)]
    saved = [(m, m.rng) for m in ours] if seed is not None else []
    fork = contextlib.nullcontext()
    if seed is not None:
        kids = _rng.seed_sequence(seed, where).spawn(len(ours) + 1)
        for m, ss in zip(ours, kids):
            m.rng = _rng.NoiseStream.from_seed(ss)  # a temporary stream; the module's own is put back
        fork = torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])
    parts = []
    try:
        with fork, torch.no_grad(), enable_mc_dropout(model):
            if seed is not None:  # torch.nn's dropouts draw from torch's generator: a forked one
                torch_seed = int(kids[-1].generate_state(1, np.uint64)[0] >> np.uint64(1))
                torch.default_generator.manual_seed(torch_seed)
                if x.device.type == "cuda":
                    torch.cuda.manual_seed(torch_seed)
            for start in range(0, max(n, 1), per_chunk):
                xc = x[start:start + per_chunk]
                stats, kept = None, []
                for t0 in range(0, T, t_chunk):
                    out = passes(xc, min(t_chunk, T - t0))
                    if stats is None:
                        stats = Stats(out.shape[1], out.shape[-1], classification)
                        if keep_samples is None:
                            keep_samples = T * n * out.shape[-1] * 8 <= SAMPLES_BUDGET
                    stats.add(out)
                    if keep_samples:
                        kept.append(out)
                parts.append({"stats": stats, "samples": np.concatenate(kept) if keep_samples else None})
    finally:
        for m, rng in saved:
            m.rng = rng
    return result(parts, T, classification, tau, bool(keep_samples), stacked).map(to_tensor)


@dataclass(frozen=True)
class Replacement:
    """One ``torch.nn`` dropout module :func:`patch` found: every qualified name it is registered
    under, its class, and the class of the droplab module put in its place (``new is None``: left
    as it was, ``reason`` says why)."""

    names: tuple[str, ...]
    old: type
    new: type | None
    reason: str = ""

    def __str__(self) -> str:
        names = " = ".join(self.names)
        if self.new is None:
            return f"{names}: {_class_name(self.old)} left in place: {self.reason}"
        return f"{names}: {_class_name(self.old)} -> {_class_name(self.new)}"


def _class_name(cls: type) -> str:
    for public in ("torch.nn", "droplab.torch"):
        if cls.__module__.startswith(public + ".") and getattr(__import__(public, fromlist=["_"]), cls.__name__,
                                                                None) is cls:
            return f"{public}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _no_equivalent(cls: type) -> str:
    from droplab.torch.modules import TORCH_CLASSES

    base = next((c for c in TORCH_CLASSES.values() if issubclass(cls, c)), None)
    if base is not None:
        return (f"a subclass of torch.nn.{base.__name__}, whose forward droplab cannot know; pass variant= (and "
                f"types={cls.__name__}) to replace it")
    if cls is torch.nn.FeatureAlphaDropout:
        return ("droplab has no equivalent for inputs of every rank; for one rank (here 5-D), "
                "patch(model, droplab.torch.AlphaDropout, types=torch.nn.FeatureAlphaDropout, axes=(2, 3, 4))")
    return f"droplab has no equivalent of {_class_name(cls)}; pass variant= to replace it"


def patch(model: torch.nn.Module, variant: type | None = None, *, types=None, seed=None, **kwargs) -> torch.nn.Module:
    """Replace ``model``'s ``torch.nn`` dropout modules by droplab's, in place.

    By default each module becomes its droplab equivalent (one table,
    :data:`droplab.torch.modules.TORCH_CLASSES`): ``Dropout``, ``Dropout1d``/``2d``/``3d`` and
    ``AlphaDropout`` become the droplab class of the same name, with the same ``p``, ``inplace``
    and semantics (channels dropped whole, SELU's statistics kept). A class droplab has no
    equivalent of (``FeatureAlphaDropout``, or a subclass whose forward it cannot know) is left
    in place, with a warning and an entry in the report. With ``variant``, every module of
    ``types`` becomes ``variant(p=old.p, seed=..., **kwargs)``.

    Every name a module is registered under is replaced (``self.attn_drop = self.drop`` stays
    one module: the same new module under both names), each new module keeps the old one's
    training mode, and ``print(model)`` shows ``droplab.<Class>`` where one was put.

    The report: ``model.droplab_patched`` (set by each call) is a tuple of :class:`Replacement`
    ``(names, old, new, reason)``, one per module found, in model order; each is also logged
    (logger ``droplab.torch``, level INFO).

    Args:
        model (torch.nn.Module): the network (modified in place and returned).
        variant (type | None): a droplab module class (``droplab.torch.Dropout``,
            ``LockedDropout``...) or any callable taking ``p=`` and ``seed=``, for every module
            replaced. Default None: each module's equivalent.
        types (type | tuple[type, ...] | None): which modules to replace. Default: every
            ``torch.nn`` dropout (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout).
        seed (int | np.random.Generator | None): the ``i``-th replaced module gets the ``i``-th
            child of ``SeedSequence(seed)``, so no two share masks. Default None: unseeded
            modules, drawing from torch's generator as the ones they replace.
        **kwargs: passed to the new modules; ``p=`` here overrides the old modules' rates.

    Returns:
        ``model``, with the report in ``model.droplab_patched``.

    Raises:
        ValueError: the model has no module of ``types``.
        TypeError: ``variant`` not callable, or ``model`` not a Module.

    Example:
        >>> import torch, droplab.torch as dt
        >>> net = dt.patch(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Dropout2d(0.2)))
        >>> net[1]
        droplab.Dropout2d(p=0.2)
        >>> print(*net.droplab_patched)
        1: torch.nn.Dropout2d -> droplab.torch.Dropout2d
    """
    from droplab.torch.modules import torch_equivalent

    where = "patch"
    _check_model(where, model)
    if variant is not None and not callable(variant):
        raise InvalidTypeError(_validate.message(where, "variant", "a module class such as droplab.torch.Dropout",
                                                 variant))
    types = torch.nn.modules.dropout._DropoutNd if types is None else types
    sites: dict[int, list] = {}  # id(old module) -> [(parent, name, qualified name)], in model order
    olds: dict[int, torch.nn.Module] = {}
    seen = set()
    for qual, parent in model.named_modules(remove_duplicate=False):
        for name, child in parent._modules.items():
            if child is None or (id(parent), name) in seen:
                continue
            seen.add((id(parent), name))
            if isinstance(child, types) and not getattr(type(child), "is_dropout", False):
                sites.setdefault(id(child), []).append((parent, name, f"{qual}.{name}" if qual else name))
                olds[id(child)] = child
    if not sites:
        raise InvalidValueError(_validate.message(where, "model", "a model containing torch.nn dropout modules to replace",
                                           type(model).__name__))
    targets = {key: variant if variant is not None else torch_equivalent(type(olds[key])) for key in sites}
    todo = [key for key in sites if targets[key] is not None]
    seeds = _rng.seed_sequence(seed, where).spawn(len(todo)) if seed is not None else [None] * len(todo)
    seeds = dict(zip(todo, seeds))
    report = []
    for key, places in sites.items():
        old, cls = olds[key], targets[key]
        names = tuple(q for _, _, q in places)
        if cls is None:
            entry = Replacement(names, type(old), None, _no_equivalent(type(old)))
            warnings.warn(f"patch: {entry}", stacklevel=2)
        else:
            args = {"p": old.p, **kwargs}
            if variant is None:
                args.setdefault("inplace", bool(old.inplace))
            new = cls(seed=seeds[key], **args)
            new.train(old.training)
            for parent, name, _ in places:
                setattr(parent, name, new)
            entry = Replacement(names, type(old), type(new))
            _log.info("patch: %s: %r -> %r", " = ".join(names), old, new)
        report.append(entry)
    model.droplab_patched = tuple(report)
    return model
