"""Rate schedules for any dropout module: ``p`` as a function of the epoch (or step).

A schedule is a callable ``step -> p``; :class:`RateScheduler` applies one to every
dropout-family module of a model (droplab's and ``torch.nn``'s) at each ``step()``, as
``torch.optim.lr_scheduler`` does for learning rates. ``p`` is the drop probability.

Example:
    >>> import torch
    >>> from droplab import torch as dt
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), dt.Dropout(0.0, seed=0))
    >>> sched = dt.RateScheduler(model, dt.LinearRamp(0.0, 0.3, steps=3))
    >>> ps = [model[1].p]
    >>> for _ in range(4):
    ...     _ = sched.step(); ps.append(round(model[1].p, 3))
    >>> ps
    [0.0, 0.1, 0.2, 0.3, 0.3]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from droplab.errors import InvalidTypeError, InvalidValueError
from droplab import _validate

__all__ = ["Constant", "LinearRamp", "EarlyDropout", "RateScheduler"]


class Constant:
    """``p`` at every step. ``p``: drop probability in [0, 1]."""

    def __init__(self, p: float) -> None:
        self.p = _validate.probability("Constant", "p", p)

    def __call__(self, step: int) -> float:
        return self.p

    def __repr__(self) -> str:
        return f"Constant(p={self.p:g})"


class LinearRamp:
    """From ``p_start`` to ``p_end`` linearly over ``steps`` steps, then ``p_end``.

    DropBlock's schedule (Ghiasi et al. 2018 ramp the drop rate from 0 up to its final value).
    ``p_start``, ``p_end``: drop probabilities in [0, 1]; ``steps``: >= 1.
    """

    def __init__(self, p_start: float, p_end: float, steps: int) -> None:
        self.p_start = _validate.probability("LinearRamp", "p_start", p_start)
        self.p_end = _validate.probability("LinearRamp", "p_end", p_end)
        self.steps = _validate.positive_int("LinearRamp", "steps", steps)

    def __call__(self, step: int) -> float:
        t = min(max(step, 0), self.steps) / self.steps
        return self.p_start + t * (self.p_end - self.p_start)

    def __repr__(self) -> str:
        return f"LinearRamp(p_start={self.p_start:g}, p_end={self.p_end:g}, steps={self.steps})"


class EarlyDropout:
    """``p`` for the first ``until`` steps, then 0 (Liu et al., "Dropout Reduces Underfitting", ICML 2023).

    ``p``: drop probability in [0, 1]; ``until``: number of steps with dropout on, >= 0.
    """

    def __init__(self, p: float, until: int) -> None:
        self.p = _validate.probability("EarlyDropout", "p", p)
        self.until = _validate.nonnegative_int("EarlyDropout", "until", until)

    def __call__(self, step: int) -> float:
        return self.p if step < self.until else 0.0

    def __repr__(self) -> str:
        return f"EarlyDropout(p={self.p:g}, until={self.until})"


class RateScheduler:
    """Sets ``p`` of every dropout module of ``model`` to ``schedule(step)``.

    The schedule's step-0 value is applied on construction; each :meth:`step` advances by
    one (call it once per epoch, or per batch, as the schedule is meant).

    Args:
        model (torch.nn.Module): the network (droplab and ``torch.nn`` dropout modules are set;
            learned-rate ``ConcreteDropout`` is left alone).
        schedule (callable): ``step -> p``, e.g. :class:`LinearRamp`.

    Raises:
        TypeError: ``schedule`` not callable.
        ValueError: the model has no settable dropout module, or the schedule returns a bad p.
    """

    def __init__(self, model: torch.nn.Module, schedule: Callable[[int], float]) -> None:
        from droplab.torch.mc import is_dropout

        if not callable(schedule):
            raise InvalidTypeError(_validate.message("RateScheduler", "schedule", "a callable step -> p", schedule))
        self.schedule = schedule
        self.modules = [m for m in model.modules() if is_dropout(m) and _settable(m)]
        if not self.modules:
            raise InvalidValueError(_validate.message("RateScheduler", "model", "a model with dropout modules",
                                               type(model).__name__))
        self.last_step = 0
        self._apply(0)

    def _apply(self, step: int) -> None:
        p = _validate.probability("RateScheduler", "p", self.schedule(step))
        for m in self.modules:
            m.p = p

    def step(self) -> float:
        """Advance one step; returns the new ``p``."""
        self.last_step += 1
        self._apply(self.last_step)
        return self.modules[0].p

    def state_dict(self) -> dict:
        """``{"last_step": n}``: with :meth:`load_state_dict`, a resumed run continues the
        schedule where it stopped (as ``torch.optim.lr_scheduler``'s ``state_dict``)."""
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        """Go to step ``state["last_step"]`` and set that step's ``p`` on every module.

        Raises:
            ValueError: ``state`` is not a dict with a non-negative integer ``last_step``.
        """
        if not isinstance(state, dict) or "last_step" not in state:
            raise InvalidValueError(_validate.message("RateScheduler", "state", "a dict with 'last_step'", state))
        self.last_step = _validate.nonnegative_int("RateScheduler", "last_step", state["last_step"])
        self._apply(self.last_step)


def _settable(m) -> bool:
    prop = getattr(type(m), "p", None)
    return not isinstance(prop, property) or prop.fset is not None
