"""Leave no trace: the global random states, and everything the doctor touches on a model."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import numpy as np

__all__ = ["global_rngs", "torch_model_state", "nn_model_state"]


@contextlib.contextmanager
def global_rngs(seed: int) -> Iterator[None]:
    """Save Python's ``random``, NumPy's legacy global and (when imported) torch's CPU
    generator; seed all three from ``seed`` (so user code drawing from them is reproducible);
    restore them on the way out, whatever happens."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch = sys.modules.get("torch")
    t_state = torch.get_rng_state() if torch is not None else None
    try:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        if torch is not None:
            torch.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if t_state is not None:
            torch.set_rng_state(t_state)


@contextlib.contextmanager
def torch_model_state(model) -> Iterator[None]:
    """Restore a torch model's parameters and buffers (in place: the same tensor objects), its
    gradients, every module's mode, and droplab modules' noise counters."""
    import torch

    tensors = [(t, t.detach().clone()) for t in list(model.parameters()) + list(model.buffers())]
    grads = [(q, None if q.grad is None else q.grad.detach().clone()) for q in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    streams = [(m, m.rng.counter) for m in model.modules() if hasattr(m, "rng") and hasattr(m.rng, "seek")]
    plain = [(m, {k: v for k, v in vars(m).items() if isinstance(v, (int, float, bool)) and not k.startswith("_")})
             for m in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for t, saved in tensors:
                if t.shape == saved.shape:
                    t.copy_(saved)
        for q, g in grads:
            q.grad = g
        for m, mode in modes:
            m.training = mode
        for m, counter in streams:
            m.rng.seek(counter)
        for m, values in plain:  # e.g. num_batches_tracked kept as a Python int by some modules
            for k, v in values.items():
                setattr(m, k, v)


@contextlib.contextmanager
def nn_model_state(model) -> Iterator[None]:
    """Restore a ``droplab.nn`` model: each module's attributes as they were (arrays such as
    BatchNorm's running statistics in place, the same objects), parameters and gradients,
    modes, and every noise stream's counter; instance attributes the doctor added (wrapped
    ``forward`` methods) are removed."""
    from droplab.nn.module import Parameter

    saved = []
    for m in model.modules():
        attrs = dict(vars(m))
        arrays = {k: v.copy() for k, v in attrs.items() if isinstance(v, np.ndarray)}
        params = {k: (v.value.copy(), v.grad.copy()) for k, v in attrs.items() if isinstance(v, Parameter)}
        rng = attrs.get("rng")
        counter = rng.counter if rng is not None and hasattr(rng, "seek") else None
        saved.append((m, attrs, arrays, params, counter))
    try:
        yield
    finally:
        for m, attrs, arrays, params, counter in saved:
            d = vars(m)
            d.clear()
            d.update(attrs)
            for k, a in arrays.items():
                np.copyto(attrs[k], a)
            for k, (value, grad) in params.items():
                np.copyto(attrs[k].value, value)
                np.copyto(attrs[k].grad, grad)
            if counter is not None:
                attrs["rng"].seek(counter)
