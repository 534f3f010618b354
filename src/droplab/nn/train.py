"""Training and evaluation: ``fit``, ``predict``, ``evaluate`` (bound as methods of every Module).

``fit`` runs mini-batch (or full-batch) training with seeded shuffling and records a history
of per-epoch lists:

* ``loss``: mean data loss over the epoch's batches, in training mode (dropout on);
* ``accuracy`` (classification): accuracy of those same training-mode outputs;
* ``regularization_loss``: the L1/L2 penalty at the end of the epoch (only if non-zero);
* ``val_loss``, ``val_accuracy``: on ``validation_data``, in eval mode; NaN when not finite
  (the run goes on: divergence is judged on the training loss only).

The objective minimised is the data loss plus ``model.regularization_loss()``.

Divergence: ``fit`` raises :class:`DivergenceError` (and writes no checkpoint for the epoch, so
the last good one stays) when a batch's training loss is NaN or infinite, when the
optimizer's arithmetic overflows, when a parameter is not finite at the end of an epoch, or
when an epoch's mean training loss exceeds ``divergence * max(L0, 1)``, ``L0`` the run's
first batch loss, taken before any update (``divergence=1e3`` by default; None turns the
last test off).

Evaluating never changes what training draws: ``predict``, ``evaluate`` and fit's own label
check put every layer's ``counter`` back as they found it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from droplab import _rng, _validate
from droplab.errors import InvalidTypeError, InvalidValueError
from droplab.errors import DroplabError
from droplab.nn.losses import Loss, SoftmaxCrossEntropy
from droplab.nn.module import Module, Sequential
from droplab.nn.optim import SGD, Adam, AdamW, Optimizer

__all__ = ["fit", "predict", "evaluate", "Callback", "DivergenceError", "DIVERGENCE"]

#: fit's default ``divergence``: an epoch's mean training loss above this many times
#: ``max(first batch loss, 1)`` means the run has diverged.
DIVERGENCE = 1e3


class DivergenceError(DroplabError, FloatingPointError):
    """Training diverged: a non-finite or exploding training loss, or an optimizer overflow.

    ``fit`` raises it before writing the epoch's checkpoint, so the last good one is kept.
    A ``FloatingPointError``, so ``except FloatingPointError`` code keeps working.

    Attributes:
        epoch (int | None): the 1-based epoch where it happened (None outside ``fit``).
        loss (float | None): the training loss that triggered it (the batch's, or the epoch's
            mean); None where no loss was to blame.
    """

    def __init__(self, message: str, epoch: int | None = None, loss: float | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss


def _finite_or_nan(v: float) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.nan


def _json_safe(v: Any) -> Any:
    """``v`` with every non-finite float replaced by None (files stay strict JSON)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


class Callback(Protocol):
    """Optional hooks called by ``fit``; implement any subset.

    ``on_epoch_begin(epoch, model)``, ``on_batch_end(step, model)`` (after the optimizer
    step: max-norm constraints go here), ``on_epoch_end(epoch, logs, model)`` (``logs``: the
    epoch's metrics). Rate schedules use ``on_epoch_begin``.
    """


def _call(callbacks: Sequence[Any], hook: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _check_xy(where: str, X, y, model_loss: Loss | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = _validate.finite_array(where, "X", X)
    y = np.asarray(y)
    if y.dtype.kind == "f":
        _validate.finite_array(where, "y", y)
    if y.shape[0:1] != X.shape[0:1]:
        raise InvalidValueError(_validate.message(where, "y", f"{X.shape[0]} targets (one per row of X)",
                                           f"array of shape {y.shape}"))
    return X, y


def _check_labels(where: str, model: Module, loss: Loss, X: np.ndarray, pairs) -> list:
    """Integer class labels must name an output unit: checked before any step is taken.

    One eval-mode forward of a single row tells the number of outputs (it updates no
    statistics, and every layer's counter is put back, so no random stream moves). Returns,
    per pair, the labels as checked (``int64``), or None where none were."""
    if not isinstance(loss, SoftmaxCrossEntropy) or all(np.ndim(y) != 1 for _, y in pairs):
        return [None] * len(pairs)
    try:
        k = _forward_eval(model, X[:1], None).shape[-1]
    except ValueError:
        return [None] * len(pairs)  # a shape error: the first training forward reports it with the real batch shape
    return [_validate.labels(where, name, y, k) if np.ndim(y) == 1 else None for name, y in pairs]


def _fingerprint(*parts) -> list:
    """What a checkpoint must be resumed with: each array's shape, dtype and CRC-32, and the
    other settings as given."""
    import zlib

    out = []
    for a in parts:
        if isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a)
            out.append([list(a.shape), a.dtype.str, zlib.crc32(a.view(np.uint8).reshape(-1)) if a.size else 0])
        else:
            out.append(a)
    return out


def _accuracy(loss: Loss, out: np.ndarray, y: np.ndarray) -> float:
    if out.ndim == 2 and out.shape[1] > 1:
        pred = out.argmax(axis=1)
        target = y if y.ndim == 1 else y.argmax(axis=1)
    else:
        pred = (loss.output(out).reshape(len(out), -1) > 0.5).astype(np.int64)
        target = y.reshape(len(y), -1)
    return float((pred == target).mean())


def _batches(n: int, batch_size: int | None) -> int:
    return 1 if batch_size is None or batch_size >= n else math.ceil(n / batch_size)


def fit(model: Module, X, y, *, loss: Loss, optimizer: Optimizer, epochs: int,
        batch_size: int | None = None, validation_data=None, seed: _rng.Seed = None,
        verbose: bool = True, early_stopping: int | None = None, monitor: str = "val_loss",
        callbacks: Sequence[Any] = (), checkpoint=None, checkpoint_every: int = 1,
        resume: bool = False, divergence: float | None = DIVERGENCE) -> dict[str, list[float]]:
    """Train ``model`` on ``(X, y)``; returns the history dict (see the module docstring).

    Args:
        model: the network (a Module, usually a Sequential).
        X: inputs ``(N, ...)``, finite. y: targets ``(N, ...)`` (integer labels for
            ``SoftmaxCrossEntropy``).
        loss: a :class:`~droplab.nn.losses.Loss`. optimizer: an Optimizer.
        epochs (int): passes over the data, >= 1.
        batch_size (int | None): mini-batch size; None (default) trains on the full batch.
        validation_data: ``(X_val, y_val)``, evaluated in eval mode after every epoch.
        seed: seed of the shuffling. None: the model's own (set by ``Sequential(seed=...)``),
            else fresh entropy.
        verbose (bool): show a progress bar. Default True.
        early_stopping (int | None): stop when ``monitor`` has not improved for this many
            epochs, and restore the best weights. Default None (off).
        monitor (str): the history key early stopping watches (``val_loss``: lower is
            better; ``*accuracy``: higher is better). Default ``"val_loss"``.
        callbacks: objects with optional hooks (see :class:`Callback`).
        checkpoint (str | os.PathLike | None): a file that receives, atomically, the model, the
            optimizer's state and fit's own (epoch, history, shuffling generator, early-stopping
            state) every ``checkpoint_every`` epochs and after the last one. A non-finite loss
            stops the run and leaves the last good checkpoint in place. Default None.
        checkpoint_every (int): epochs between checkpoints, >= 1. Default 1.
        resume (bool): when ``checkpoint`` exists, restore it into ``model`` and ``optimizer``
            and continue from the epoch after it: the result is bit-identical to a run that was
            never interrupted. Without the file, training starts afresh. Default False.
        divergence (float | None): the run has diverged when an epoch's mean training loss
            exceeds ``divergence * max(L0, 1)``, ``L0`` the first batch's loss before any
            update (kept in checkpoints, so a resumed run judges by the same ``L0``); > 1.
            None: only non-finite losses and parameters count. Default ``1e3``.

    Raises:
        ValueError: bad arguments, data (NaN/inf, empty, mismatched lengths) or a checkpoint
            that does not match (architecture, optimizer, data or batch size).
        DivergenceError: (a FloatingPointError) the run diverged, by the rule above; the last
            good checkpoint is kept.
    """
    where = "fit"
    if not isinstance(model, Module):
        raise InvalidTypeError(_validate.message(where, "model", "a droplab Module", type(model).__name__))
    if not isinstance(loss, Loss):
        raise InvalidTypeError(_validate.message(where, "loss", "a droplab loss (e.g. nn.SoftmaxCrossEntropy())", loss))
    if not isinstance(optimizer, Optimizer):
        raise InvalidTypeError(_validate.message(where, "optimizer", "a droplab optimizer (e.g. nn.Adam())", optimizer))
    epochs = _validate.positive_int(where, "epochs", epochs)
    if epochs > _validate.FLAG_BOUNDS["epochs"].maximum:  # the CLI's --epochs bound, one number
        raise InvalidValueError(_validate.message(
            where, "epochs", f"an integer in [1, {_validate.FLAG_BOUNDS['epochs'].maximum}]", epochs))
    if batch_size is not None:
        batch_size = _validate.positive_int(where, "batch_size", batch_size)
    if early_stopping is not None:
        early_stopping = _validate.positive_int(where, "early_stopping", early_stopping)
    if checkpoint is not None:
        from droplab.nn import io

        checkpoint = io._check_path(where, checkpoint, "checkpoint")
        from droplab.nn.module import _check_unshared

        _check_unshared(where, model)  # before training: a checkpoint of shared layers would not load
    checkpoint_every = _validate.positive_int(where, "checkpoint_every", checkpoint_every)
    if not isinstance(resume, bool):
        raise InvalidTypeError(_validate.message(where, "resume", "True or False", resume))
    if resume and checkpoint is None:
        raise InvalidValueError(_validate.message(where, "checkpoint", "a file path when resume=True", None))
    if divergence is not None:
        divergence = _validate.positive_float(where, "divergence", divergence)
        if divergence <= 1:
            raise InvalidValueError(_validate.message(where, "divergence", "a finite number > 1 or None", divergence,
                                               "It multiplies the first batch's loss."))
    X, y = _check_xy(where, X, y)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InvalidTypeError(_validate.message(where, "validation_data", "a pair (X_val, y_val)",
                                              type(validation_data).__name__))
        Xv, yv = _check_xy(where, *validation_data)
    labels = _check_labels(where, model, loss, X, [("y", y)] + ([("y_val", yv)] if validation_data is not None else []))[0]
    # checked labels and the plain softmax loss: each batch skips the label check and counts its
    # correct rows in the loss's own pass (the same values and gradients, bit for bit)
    fast_loss = labels is not None and type(loss) is SoftmaxCrossEntropy
    keys = ["loss"] + (["accuracy"] if loss.classification else [])
    if validation_data is not None:
        keys += ["val_loss"] + (["val_accuracy"] if loss.classification else [])
    if early_stopping is not None:
        _validate.one_of(where, "monitor", monitor, keys)

    if seed is not None:
        g = _rng.generator(_rng.seed_sequence(seed, where))
    else:
        g = getattr(model, "_fit_rng", None)
        if g is None:
            g = _rng.generator(model._fit_seed if model._fit_seed is not None else np.random.SeedSequence())
            model._fit_rng = g
    model._loss = loss  # predict() turns outputs into probabilities with it

    n = X.shape[0]
    nb = _batches(n, batch_size)
    history: dict[str, list[float]] = {k: [] for k in keys}
    params = model.parameters()
    best, best_params, waited = None, None, 0
    lower_better = "loss" in monitor
    start, stopped = 0, False
    reference: float | None = None  # the first batch's loss, before any update
    if checkpoint is not None:
        val = (Xv, yv) if validation_data is not None else ()
        data_id = _fingerprint(X, y, *val, batch_size, type(loss).__name__)
        if resume and checkpoint.exists():
            state, best_params = io.read_checkpoint(checkpoint, model, optimizer)
            if state.get("data") != data_id:
                raise InvalidValueError(f"fit: cannot resume from {str(checkpoint)!r}: it was written for other data, "
                                 "batch size or loss; pass the same ones (or resume=False to start afresh).")
            try:
                start, stopped, best, waited = (int(state["epoch"]), bool(state["stopped"]), state["best"],
                                                int(state["waited"]))
                history = {k: [math.nan if v is None else float(v) for v in vals]
                           for k, vals in state["history"].items()}
                reference = state.get("reference_loss")
                if reference is None and history.get("loss"):  # a checkpoint from before reference_loss
                    reference = history["loss"][0]
                reference = None if reference is None else float(reference)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise InvalidValueError(f"fit: cannot resume from {str(checkpoint)!r}: its fit state is damaged.") from None
            io.set_generator_state(checkpoint, g, state.get("shuffle"))

    progress = _Progress(max(epochs - start, 0), verbose)
    # the gradient with respect to X is never read: a Sequential can skip computing it
    if type(model).backward is Sequential.backward:
        def backward(dy):
            return model._backward(dy, False)
    else:
        backward = model.backward
    # the compiled update zeroes each gradient as it consumes it, in place of the next batch's
    # zero_grad, where nobody can read the gradients in between: no on_batch_end callback, the
    # library's zero_grad, and never after an epoch's last batch (its gradients stay readable)
    can_clear = (type(optimizer) in (SGD, Adam, AdamW) and type(model).zero_grad is Module.zero_grad
                 and not any(getattr(cb, "on_batch_end", None) is not None for cb in callbacks))
    _pad_heap()
    blas = _one_blas_thread()
    blas.__enter__()
    try:
        for epoch in range(start, epochs if not stopped else start):
            _call(callbacks, "on_epoch_begin", epoch, model)
            model.train()
            order = g.permutation(n) if nb > 1 else None
            total_loss, correct_w = 0.0, 0.0
            cleared = False
            for b in range(nb):
                if order is None:
                    xb, yb = X, (labels if fast_loss else y)
                else:
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    xb, yb = X[idx], (labels[idx] if fast_loss else y[idx])
                out = model.forward(xb)
                if fast_loss:
                    value, correct = loss._forward_labels(out, yb)
                else:
                    value, correct = loss(out, yb), None
                if not math.isfinite(value):
                    raise DivergenceError(
                        f"fit: the training loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
                        "lower the learning rate or check the data.", epoch + 1, value)
                if reference is None:
                    reference = value
                if not cleared:
                    model.zero_grad()
                backward(loss.backward())
                try:
                    cleared = optimizer._step(params, can_clear and b + 1 < nb)
                except DivergenceError as exc:
                    raise DivergenceError(f"fit: training diverged at epoch {epoch + 1}, batch {b + 1}: {exc}",
                                          epoch + 1, value) from None
                _call(callbacks, "on_batch_end", optimizer.iterations, model)
                total_loss += value * len(xb)
                if loss.classification:
                    correct_w += (correct / len(xb) if correct is not None else _accuracy(loss, out, yb)) * len(xb)
            logs = {"loss": total_loss / n}
            _check_divergence(logs["loss"], reference, divergence, params, epoch + 1)
            if loss.classification:
                logs["accuracy"] = correct_w / n
            reg = model.regularization_loss()
            if reg:
                logs["regularization_loss"] = reg
                history.setdefault("regularization_loss", [])
            if validation_data is not None:
                with np.errstate(over="ignore", invalid="ignore"):  # recorded as NaN, not fatal
                    ev = evaluate(model, Xv, yv, loss)
                logs["val_loss"] = _finite_or_nan(ev["loss"])
                if loss.classification:
                    logs["val_accuracy"] = ev["accuracy"]
            for k, v in logs.items():
                history[k].append(float(v))
            _call(callbacks, "on_epoch_end", epoch, logs, model)
            progress.update(logs)
            if early_stopping is not None:
                cur = logs[monitor]
                if math.isfinite(cur) and (best is None or (cur < best if lower_better else cur > best)):
                    best, waited = cur, 0
                    best_params = [p.value.copy() for p in params]
                else:
                    waited += 1
                    stopped = waited >= early_stopping
            if checkpoint is not None and (stopped or (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                io.write_checkpoint(checkpoint, model, optimizer, _json_safe({
                    "epoch": epoch + 1, "stopped": stopped, "history": history, "best": best, "waited": waited,
                    "shuffle": g.bit_generator.state, "data": data_id, "reference_loss": reference}), best_params)
            if stopped:
                break
    finally:
        blas.__exit__(None, None, None)
        progress.close()
    if best_params is not None:
        for p, v in zip(params, best_params):
            p.value[...] = v
    return history


def _check_divergence(epoch_loss: float, reference: float | None, divergence: float | None,
                      params: list, epoch: int) -> None:
    """The per-epoch divergence test (the rule in the module docstring)."""
    if divergence is not None and reference is not None and epoch_loss > divergence * max(reference, 1.0):
        raise DivergenceError(
            f"fit: the training loss diverged at epoch {epoch}: {epoch_loss:.4g} is more than "
            f"divergence={divergence:g} times max(first batch loss {reference:.4g}, 1); lower the learning "
            "rate or check the data.", epoch, epoch_loss)
    for i, p in enumerate(params):
        if not np.isfinite(p.value).all():
            raise DivergenceError(
                f"fit: parameter {i} ({p.name or '?'}) became NaN or infinite at epoch {epoch}; lower the "
                "learning rate or check the data.", epoch, epoch_loss)


#: Environment variables through which a user sets the BLAS thread count; fit leaves BLAS alone
#: when any of them is set.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _one_blas_thread():
    """One BLAS thread while fit trains (or ``mc_predict`` runs its chunks on one thread per
    core), unless the user chose a count through the environment.

    OpenBLAS's threads spin-wait between calls and steal the cores that numba's mask kernels
    and other processes need. Measured on the 2-core machine (``droplab bench``, section
    ``blas``, and a fit loop): idle, 2 BLAS threads were 10-20% faster (MNIST-1D MLP, 10
    steps of 100: 13.4 vs 11.9 ms; spiral epoch: 10.5 vs 8.3 ms); with other work on the
    machine (load ~3), 2 threads were 2-4x slower on the spiral (57-121 vs 30-38 ms) and
    7-13x slower on the MNIST-1D MLP (1.9-3.5 s vs 0.13-0.26 s per epoch). One thread is the
    default that is never catastrophic, and it keeps the thread count, and so the result,
    the same whatever the load.

    Enter and exit it in one thread (``with``): threadpoolctl hands OpenBLAS's process-wide
    setting to the thread that entered until that thread exits. While it is held, BLAS calls
    in every thread of the process run on one thread.
    """
    if any(os.environ.get(k) for k in _BLAS_ENV):
        return contextlib.nullcontext()
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    # a fresh look at the loaded libraries each fit (~1 ms): a controller kept from an earlier
    # fit misses a BLAS loaded since (numba loads scipy's OpenBLAS), which then ran 2 threads
    return ThreadpoolController().limit(limits=1, user_api="blas")


#: Free memory glibc keeps at the top of the heap instead of returning it (``M_TOP_PAD``).
HEAP_PAD = 64 << 20
_heap_padded = False


def _pad_heap() -> None:
    """Let glibc keep up to ``HEAP_PAD`` bytes of freed heap, once per process (Linux only).

    A training step frees its activations and the next one allocates the same sizes again.
    glibc returns the freed top of its heap to the system as soon as more than a few MB are
    free, so every step page-faulted its activations back in: about 900 faults per spiral
    epoch (2 -> 512 -> 3, 3000 samples) and 17-20 ms per epoch, against 0 faults and 12-14 ms
    with the padding. Evaluation and ``mc_predict`` free and remake their chunks' arrays the
    same way: unpadded, ``mc_predict`` at T = 100 on 10,000 inputs took 240,000 faults and
    2.3-2.4 s per call, padded 0 faults and 1.6-1.7 s. The cost is at most ``HEAP_PAD`` of free
    memory the process keeps. A ``MALLOC_TOP_PAD_`` set in the environment wins, and ``DROPLAB_HEAP_PAD=0`` turns this off.
    """
    global _heap_padded
    if _heap_padded:
        return
    _heap_padded = True
    if os.environ.get("MALLOC_TOP_PAD_") or os.environ.get("DROPLAB_HEAP_PAD", "").strip() == "0":
        return
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: no M_TOP_PAD
            return
        libc.mallopt(ctypes.c_int(-2), ctypes.c_int(HEAP_PAD))  # M_TOP_PAD
    except (OSError, AttributeError):  # pragma: no cover - no usable C library
        pass


class _Progress:
    """A rich progress bar over epochs, or nothing when not verbose.

    It fits an 80-column terminal (a short bar, the epoch count, the time left and the latest
    loss and validation figures, abbreviated) and, when fit ends, leaves one summary line.
    """

    _SHORT = {"loss": "loss", "accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}

    def __init__(self, epochs: int, verbose: bool) -> None:
        self._bar = None
        self._logs: dict[str, float] = {}
        self._done = 0
        if verbose:
            import time

            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._t0 = time.perf_counter()
            self._bar = Progress(TextColumn("epoch"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True)
            self._task = self._bar.add_task("fit", total=epochs, info="")
            self._bar.start()

    def _info(self, keys) -> str:
        return " ".join(f"{self._SHORT.get(k, k)}={v:.4f}" for k, v in self._logs.items() if k in keys)

    def update(self, logs: dict[str, float]) -> None:
        if self._bar is not None:
            self._logs = dict(logs)
            self._done += 1
            self._bar.update(self._task, advance=1, info=self._info(("loss", "val_loss", "val_accuracy")))

    def close(self) -> None:
        if self._bar is not None:
            import time

            self._bar.stop()
            seconds = time.perf_counter() - self._t0
            self._bar.console.print(f"fit: {self._done} epochs in {seconds:.1f} s; {self._info(self._SHORT)}",
                                    highlight=False, markup=False, soft_wrap=False)


def _forward_eval(model: Module, X: np.ndarray, batch_size: int | None) -> np.ndarray:
    """Eval-mode forward; every layer's mode and ``counter`` are put back afterwards, so an
    evaluation never moves the random streams training draws from (DropConnect's Gaussian
    inference draws by its counter)."""
    _pad_heap()
    mods = list(model.modules())
    was = [m.training for m in mods]
    counters = [(m, m.counter) for m in mods if isinstance(getattr(m, "counter", None), int)]
    model.eval()
    try:
        if batch_size is None or batch_size >= len(X):
            return model.forward(X)
        return np.concatenate([model.forward(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        for m, t in zip(mods, was):
            m.training = t
        for m, c in counters:
            m.counter = c


def predict(model: Module, X, *, batch_size: int | None = None) -> np.ndarray:
    """Eval-mode forward pass; probabilities when the model was fit with a classification loss.

    The modes of the model's layers and their counters are restored afterwards (a prediction
    never moves a random stream).
    """
    X = _validate.finite_array("predict", "X", X)
    if batch_size is not None:
        batch_size = _validate.positive_int("predict", "batch_size", batch_size)
    out = _forward_eval(model, X, batch_size)
    loss = getattr(model, "_loss", None)
    return loss.output(out) if loss is not None else out


def evaluate(model: Module, X, y, loss: Loss, *, batch_size: int | None = None) -> dict[str, float]:
    """Data loss (without the L1/L2 penalty) and, for classification, accuracy, in eval mode."""
    if not isinstance(loss, Loss):
        raise InvalidTypeError(_validate.message("evaluate", "loss", "a droplab loss", loss))
    X, y = _check_xy("evaluate", X, y)
    if batch_size is not None:
        batch_size = _validate.positive_int("evaluate", "batch_size", batch_size)
    out = _forward_eval(model, X, batch_size)
    loss = copy.copy(loss)  # keep the caller's loss object's gradient untouched
    result = {"loss": loss(out, y)}
    if loss.classification:
        result["accuracy"] = _accuracy(loss, out, y)
    return result
