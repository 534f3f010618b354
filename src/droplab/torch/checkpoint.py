"""droplab's checkpoint helpers for PyTorch training: weights, optimiser, schedule and the
random state of droplab's modules in one dict, so a resumed run is bit-exact.

The model's ``state_dict`` is plain PyTorch (the same keys with or without droplab's modules);
the random state travels beside it (:func:`droplab.torch.get_rng_state`).

Example:
    >>> import torch, droplab.torch as dt
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3), dt.Dropout(0.5, seed=0))
    >>> ckpt = dt.checkpoint(net)
    >>> sorted(ckpt)
    ['model', 'rng']
    >>> a = net(torch.ones(2, 3))
    >>> dt.restore(ckpt, net)
    >>> bool(torch.equal(net(torch.ones(2, 3)), a))
    True
"""

from __future__ import annotations

import copy

import torch

from droplab.errors import InvalidTypeError, InvalidValueError
from droplab import _validate
from droplab.torch._random import get_rng_state, set_rng_state

__all__ = ["checkpoint", "restore"]


def checkpoint(model: torch.nn.Module, optimizer=None, scheduler=None, **extra) -> dict:
    """A resumable snapshot (copies, safe to keep while training goes on; ``torch.save`` it).

    Args:
        model (torch.nn.Module): the network.
        optimizer, scheduler: anything with ``state_dict()`` (``torch.optim`` optimisers and
            LR schedulers, :class:`droplab.torch.RateScheduler`), or None.
        **extra: stored as they are (epoch, metrics...).

    Returns:
        ``{"model": state_dict, "rng": get_rng_state(model), "optimizer": ..., "scheduler": ..., **extra}``
        (the last two only when given).
    """
    if not isinstance(model, torch.nn.Module):
        raise InvalidTypeError(_validate.message("checkpoint", "model", "a torch.nn.Module", type(model).__name__))
    out = {"model": copy.deepcopy(model.state_dict()), "rng": copy.deepcopy(get_rng_state(model))}
    if optimizer is not None:
        out["optimizer"] = copy.deepcopy(optimizer.state_dict())
    if scheduler is not None:
        out["scheduler"] = copy.deepcopy(scheduler.state_dict())
    return {**out, **extra}


def restore(ckpt: dict, model: torch.nn.Module, optimizer=None, scheduler=None) -> None:
    """Load :func:`checkpoint`'s dict into ``model`` (strictly), the optimiser, the scheduler and
    the random state of droplab's modules (and of the generators they draw from).

    Raises:
        ValueError: ``ckpt`` lacks what is asked for.
    """
    where = "restore"
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise InvalidValueError(_validate.message(where, "ckpt", "the dict droplab.torch.checkpoint returned",
                                           type(ckpt).__name__))
    model.load_state_dict(ckpt["model"])
    if "rng" in ckpt:
        set_rng_state(model, ckpt["rng"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if name not in ckpt:
                raise InvalidValueError(_validate.message(where, "ckpt", f"a checkpoint with {name!r}", sorted(ckpt)))
            obj.load_state_dict(ckpt[name])
