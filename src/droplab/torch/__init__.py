"""droplab's dropout family for PyTorch (the ``torch`` extra): ``import droplab.torch as dt``.

``import droplab`` never imports torch; importing this package does. ``p`` is always the
probability that an element is zeroed (not the keep probability).

* Modules: :class:`Dropout` (``axes=``, ``inverted=``), :class:`Dropout1d`/``2d``/``3d``,
  :class:`AlphaDropout`, :class:`GaussianDropout`, :class:`DropConnect` (alias
  ``DropConnectLinear``), :class:`DropBlock2d`, :class:`DropPath`, :class:`LockedDropout`,
  :class:`ConcreteDropout`, and :func:`variant` for any variant of the :mod:`droplab.family`
  registry. Each is its spec, the same as the ``droplab.nn`` layer of the same name: defaults,
  checks, ``config()``, and noise (identical for the same ``seed=``; or ``generator=``, a
  ``torch.Generator``). Functional forms in :mod:`droplab.torch.functional`.
* Rate schedules: :class:`RateScheduler` with :class:`Constant`, :class:`LinearRamp`,
  :class:`EarlyDropout`.
* MC dropout: :class:`enable_mc_dropout`, :func:`mc_predict` (the :class:`~droplab.mc.MCResult`
  of :func:`droplab.nn.mc_predict`); :func:`patch` (each ``torch.nn`` dropout to its droplab
  equivalent; the report, ``model.droplab_patched``, is a tuple of :class:`Replacement`).
* Random state and checkpoints: :func:`get_rng_state`, :func:`set_rng_state`,
  :func:`checkpoint`, :func:`restore`; ``doctor`` (:func:`droplab.doctor.check_torch_model`).

Random state follows PyTorch's rules, written once in :mod:`droplab.torch._random`: unseeded
modules draw from torch's generator at each training forward (so activation checkpointing
recomputes them exactly); clones, DataParallel replicas and distributed ranks never repeat
each other's masks, and a deep copy never moves the original's stream; seeded modules
reproduce the NumPy engine's masks bit for bit; ``state_dict()`` has the keys of the same model
with ``torch.nn`` dropout.

Masks: contiguous float32/float64 CPU tensors go through :mod:`droplab.kernels` on zero-copy
numpy views inside a custom ``autograd.Function`` that saves no tensor (backward regenerates
the mask from the key and the counter, and is itself differentiable). Other dtypes, devices,
``torch.func`` transforms and captured graphs compute the same Philox bits in pure torch.
``torch.compile`` works: each droplab random module's ``forward`` is
``torch.compiler.disable``-d, a deliberate graph break (its CPU kernel is numba, which dynamo
cannot trace), so it runs eagerly between compiled graphs and never triggers a recompile.

Example:
    >>> import torch
    >>> import droplab.torch as dt
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), dt.Dropout(0.2, seed=0))
    >>> net(torch.ones(4, 8)).shape
    torch.Size([4, 16])
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    from droplab._install import TORCH_HINT

    raise ImportError(f"droplab.torch needs PyTorch, which is not installed: {TORCH_HINT}.") from err

from droplab.mc import MCResult
from droplab.torch import functional
from droplab.torch._random import get_rng_state, set_rng_state
from droplab.torch.checkpoint import checkpoint, restore
from droplab.torch.mc import MCPrediction, Replacement, enable_mc_dropout, is_dropout, mc_predict, patch
from droplab.torch.modules import (
    AlphaDropout,
    ConcreteDropout,
    DropBlock2d,
    DropConnect,
    DropConnectLinear,
    DropPath,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    GaussianDropout,
    LockedDropout,
    regularization_loss,
    variant,
)
from droplab.torch.schedules import Constant, EarlyDropout, LinearRamp, RateScheduler

__all__ = [
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "GaussianDropout", "DropConnect",
    "DropConnectLinear",
    "DropBlock2d", "DropPath", "LockedDropout", "ConcreteDropout", "regularization_loss", "variant",
    "Constant", "LinearRamp", "EarlyDropout", "RateScheduler",
    "is_dropout", "enable_mc_dropout", "MCResult", "MCPrediction", "mc_predict", "patch", "Replacement",
    "get_rng_state", "set_rng_state", "checkpoint", "restore",
    "functional", "doctor",
]


def __getattr__(name: str):
    if name == "doctor":  # dt.doctor(model, example_input): imported on first use (the doctor is heavy)
        from droplab.doctor import check_torch_model

        return check_torch_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
