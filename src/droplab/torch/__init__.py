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
* MC dropout: :class:`enable_mc_dropout`, :func:`mc_predict`, :func:`patch`.

Masks: contiguous float32/float64 CPU tensors go through :mod:`droplab.kernels` on zero-copy
numpy views inside a custom ``autograd.Function`` that saves no tensor (backward regenerates
the mask from the key and the counter). Other dtypes and devices compute the same Philox
bits in pure torch. ``torch.compile`` works: each droplab random module's ``forward`` is
``torch.compiler.disable``-d, a deliberate graph break (its key and counter are Python state
and its CPU kernel is numba, which dynamo cannot trace), so it runs eagerly between compiled
graphs and never triggers a recompile as its counter advances.

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

from droplab.torch import functional
from droplab.torch.mc import MCPrediction, enable_mc_dropout, is_dropout, mc_predict, patch
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
    "is_dropout", "enable_mc_dropout", "MCPrediction", "mc_predict", "patch",
    "functional",
]
