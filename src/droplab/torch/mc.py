"""MC dropout for PyTorch models: switch on only the dropout family, predict, patch.

Example:
    >>> import torch
    >>> from droplab import torch as dt
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
    ...                             torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    >>> model = dt.patch(model, dt.Dropout, seed=0).eval()
    >>> model[3]
    Dropout(p=0.3)
    >>> with dt.enable_mc_dropout(model):
    ...     print(model[1].training, model[3].training)
    False True
    >>> print(model[3].training)
    False
    >>> pred = dt.mc_predict(model, torch.randn(5, 4), samples=20)
    >>> pred.mean.shape, pred.entropy.shape, bool(torch.allclose(pred.mean.sum(1), torch.ones(5)))
    (torch.Size([5, 3]), torch.Size([5]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from droplab import _rng, _validate

__all__ = ["is_dropout", "enable_mc_dropout", "MCPrediction", "mc_predict", "patch"]


def is_dropout(module: torch.nn.Module) -> bool:
    """True for droplab's dropout family and ``torch.nn``'s Dropout*, AlphaDropout, FeatureAlphaDropout."""
    return bool(getattr(type(module), "is_dropout", False)) or isinstance(module, torch.nn.modules.dropout._DropoutNd)


def _check_model(where: str, model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(_validate.message(where, "model", "a torch.nn.Module", type(model).__name__))
    return model


class enable_mc_dropout:
    """Put only the dropout-family modules of ``model`` in training mode; every other module
    (BatchNorm, ...) in eval. Usable as a context manager, which restores every module's mode
    on exit, also on error; or call :meth:`restore` yourself.

    It never calls ``model.train()`` (that would switch BatchNorm to batch statistics: the
    bug Keras users hit, keras #9412).

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

    def restore(self) -> None:
        """Give every module back the mode it had (idempotent)."""
        for m, mode in self._saved:
            m.training = mode

    def __enter__(self) -> enable_mc_dropout:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


@dataclass
class MCPrediction:
    """MC dropout summary over ``T`` stochastic passes.

    Attributes:
        mean: ``(N, K)`` predictive probabilities (mean over passes).
        std: ``(N, K)`` their standard deviation over passes.
        entropy: ``(N,)`` predictive entropy ``H[mean]`` (nats).
        mutual_information: ``(N,)`` ``H[mean] - mean_t H[p_t]`` (epistemic part, >= 0).
        samples: ``(T, N, K)`` the per-pass probabilities.
    """

    mean: torch.Tensor
    std: torch.Tensor
    entropy: torch.Tensor
    mutual_information: torch.Tensor
    samples: torch.Tensor


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(torch.where(p > 0, p * torch.log(p.clamp_min(1e-45)), torch.zeros_like(p))).sum(-1)


def mc_predict(model: torch.nn.Module, x: torch.Tensor, samples: int = 50, *, batch_size: int | None = None,
               output: str = "logits") -> MCPrediction:
    """Predictive mean, std, entropy and mutual information from ``samples`` MC dropout passes.

    The passes are batched: ``x`` is stacked several times along the batch dimension so one
    forward computes many passes (each row gets its own mask), up to ``batch_size`` rows per
    forward. Models with noise not drawn per row (``DropConnect``, ``DropPath(mode="batch")``,
    ``DropBlock2d``, ``axes`` sharing axis 0) fall back to one pass per forward. Runs under ``no_grad`` with
    :class:`enable_mc_dropout`; modes are restored afterwards.

    Args:
        model (torch.nn.Module): a classifier with at least one dropout module.
        x (torch.Tensor): inputs ``(N, ...)``.
        samples (int): number of passes ``T``, >= 1. Default 50.
        batch_size (int | None): the most rows fed in one forward. Default None: all ``T * N``
            rows at once when that is at most 65536, else as many copies as fit in that.
        output (str): what the model returns: ``"logits"`` (softmax applied; default) or
            ``"probs"``.

    Returns:
        :class:`MCPrediction`.

    Raises:
        ValueError: ``samples`` < 1, bad ``batch_size``/``output``, or no dropout module.
        TypeError: ``model`` not a Module or ``x`` not a tensor.
    """
    where = "mc_predict"
    _check_model(where, model)
    if not isinstance(x, torch.Tensor):
        raise TypeError(_validate.message(where, "x", "a torch.Tensor", type(x).__name__))
    samples = _validate.positive_int(where, "samples", samples)
    output = _validate.one_of(where, "output", output, ("logits", "probs"))
    if batch_size is not None:
        batch_size = _validate.positive_int(where, "batch_size", batch_size)
    drops = [m for m in model.modules() if is_dropout(m)]
    if not drops:
        raise ValueError(_validate.message(where, "model", "a model with at least one dropout module",
                                           type(model).__name__, "Add dropout, or use droplab.torch.patch()."))
    # torch.nn's dropout draws per element; droplab's modules answer from their spec
    stackable = all(getattr(m, "rows_independent", True) for m in drops)
    n = int(x.shape[0])
    rows = batch_size if batch_size is not None else max(n, 1 << 16)
    chunk = max(1, min(n, rows))
    outs = []
    with torch.no_grad(), enable_mc_dropout(model):
        for start in range(0, max(n, 1), chunk):
            xc = x[start:start + chunk]
            m = len(xc)
            per_pass = max(1, rows // max(m, 1)) if stackable else 1
            got = []
            done = 0
            while done < samples:
                k = min(per_pass, samples - done)
                y = model(xc.repeat(k, *([1] * (x.ndim - 1))) if k > 1 else xc)
                got.append(y.reshape(k, m, *y.shape[1:]))
                done += k
            outs.append(torch.cat(got, 0))
    logits = torch.cat(outs, 1)
    probs = torch.softmax(logits, -1) if output == "logits" else logits
    mean = probs.mean(0)
    std = probs.std(0, unbiased=False)
    entropy = _entropy(mean)
    mutual = (entropy - _entropy(probs).mean(0)).clamp_min(0)
    return MCPrediction(mean, std, entropy, mutual, probs)


def patch(model: torch.nn.Module, variant: type, *, types=None, seed=None, **kwargs) -> torch.nn.Module:
    """Replace ``model``'s ``torch.nn`` dropout modules by ``variant(p=<their p>, **kwargs)``, in place.

    Args:
        model (torch.nn.Module): the network (modified in place and returned).
        variant (type): a droplab module class (``droplab.torch.Dropout``, ``LockedDropout``...)
            or any callable taking ``p=`` and ``seed=``.
        types (type | tuple[type, ...] | None): which modules to replace. Default: every
            ``torch.nn`` dropout (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout).
        seed (int | np.random.Generator | None): the ``i``-th replaced module gets the ``i``-th
            child of ``SeedSequence(seed)``, so no two share masks. Default None.
        **kwargs: passed to ``variant``; ``p=`` here overrides the old modules' rates.

    Returns:
        ``model``. Each new module keeps the old one's training mode.

    Raises:
        ValueError: the model has no module of ``types``.
        TypeError: ``variant`` not callable, or ``model`` not a Module.
    """
    where = "patch"
    _check_model(where, model)
    if not callable(variant):
        raise TypeError(_validate.message(where, "variant", "a module class such as droplab.torch.Dropout", variant))
    types = torch.nn.modules.dropout._DropoutNd if types is None else types
    targets = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, types) and not getattr(type(child), "is_dropout", False):
                targets.append((parent, name, child))
    if not targets:
        raise ValueError(_validate.message(where, "model", "a model containing torch.nn dropout modules to replace",
                                           type(model).__name__))
    seeds = _rng.seed_sequence(seed, where).spawn(len(targets)) if seed is not None else [None] * len(targets)
    for (parent, name, child), s in zip(targets, seeds):
        options = {"p": child.p, **kwargs}
        new = variant(seed=s, **options)
        new.train(child.training)
        setattr(parent, name, new)
    return model
