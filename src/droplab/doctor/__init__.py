"""``droplab doctor``: find the dropout bugs in a user's own code.

* :func:`check_impl` tests an implementation (a function ``f(x, p[, training])``, a PyTorch
  module class taking ``p``, a NumPy layer class in the NNFS style) against dropout's contract,
  with 5-sigma bounds derived from the number of independent draws, and names known bugs by
  their signature (a ``randn`` mask: rate ``1 - Phi(1 - p)``; keep and drop mixed up: ``1 - p``).
* :func:`check_torch_model` and :func:`check_model` examine a PyTorch or ``droplab.nn`` model:
  randomness left on in evaluation, a dropout whose output never reaches the model's output,
  dropout feeding BatchNorm, channel dropout given an input its spec refuses, dropout on the
  logits, and MC-dropout code that puts BatchNorm in training mode.

Each returns a :class:`Report`: findings ranked by severity, each one line (what is wrong, the
measurement against the expectation, the fix), and the measurements behind them. The doctor
restores everything it touches. ``p`` is always the probability that an element is zeroed
(not the keep probability). Expectations come from :mod:`droplab.family`'s registry.
"""

from droplab.doctor._report import Finding, Report
from droplab.doctor.impl import check_impl
from droplab.doctor.model import check_model, check_torch_model

__all__ = ["check_impl", "check_model", "check_torch_model", "Finding", "Report"]
