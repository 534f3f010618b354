"""The lab's one experiment definition: what a run trains (:class:`RunConfig`), how its network
is built (:func:`build`, through :mod:`droplab.lab.models`) and how it is trained and measured
(:func:`train_run`).

Every command that trains (compare, sweep, uncertainty, ensemble, every study) describes its
runs as ``RunConfig`` values and hands them to :mod:`droplab.lab.runner`, which calls
:func:`train_run` in a worker, so a record always has the same keys: ``p``, ``seed``,
``metrics`` (``train_accuracy`` measured in eval mode, ``val_accuracy``, ``train_loss``,
``val_loss``, ``gap``, ``seconds_per_epoch``) and ``history``. The defaults below are the
lab's one set of defaults (the ``compare`` experiment: MNIST-1D, an MLP 40-256-256-10, Adam
1e-3, batches of 100, 150 epochs); a command states only where it departs from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from droplab.errors import InvalidValueError
import numpy as np

from droplab import _validate, nn
from droplab.lab import models

__all__ = ["RunConfig", "build", "sample_shape", "train_run", "OPTIMIZERS", "ENGINES", "LAB_MODELS", "make_optimizer"]

OPTIMIZERS = ("adam", "adamw", "sgd")
ENGINES = ("numpy", "torch")
# networks the lab builds for its own experiments (not --model choices): the batchnorm-order
# study's BN network and the ensemble command's float64 network
LAB_MODELS = ("bn-mlp", "ensemble")


@dataclass(frozen=True)
class RunConfig:
    """What one run trains: the data, the network, the optimiser and the schedule (not p or the seed).

    Attributes:
        dataset, label, data_options: what :func:`droplab.data.load` loads (``label``: the
            column of a .csv; ``data_options``: e.g. ``{"samples": 100}`` for spiral).
        model: ``logistic``, ``mlp``, ``cnn``, ``rnn``, ``gru`` (``--model``), or a lab network
            of ``LAB_MODELS``.
        hidden, activation, variant, input_p, input_layer, init: the network (see
            :func:`droplab.lab.models.mlp`; ``input_p`` applies only where p > 0 unless
            ``input_layer``, which keeps the input dropout layer in every arm).
        epochs, batch_size (None: full batch), optimizer, lr, decay (lr / (1 + decay * step)),
        l2 (every weight matrix), first_l2 (the first layer's weights and biases), max_norm.
        engine: ``numpy`` or ``torch`` (``--engine``).
        validate_each_epoch: evaluate the validation set after every epoch (the history's
            ``val_*``); off for timing studies.
        epoch_times: record each epoch's wall and CPU seconds (``epoch_seconds``,
            ``epoch_cpu_seconds``).
        options: options of a network (``residual`` for ``mlp``: see
            :func:`droplab.lab.models.mlp`; ``head``, ``head_units``; ``order``).
    """

    dataset: str = "mnist1d"
    label: str = "label"
    data_options: dict = field(default_factory=dict)
    model: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    variant: str = "dropout"
    input_p: float = 0.0
    input_layer: bool = False
    init: str = "auto"
    epochs: int = 150
    batch_size: int | None = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    decay: float = 0.0
    l2: float = 0.0
    first_l2: float = 0.0
    max_norm: float | None = None
    engine: str = "numpy"
    validate_each_epoch: bool = True
    epoch_times: bool = False
    options: dict = field(default_factory=dict)

    def validate(self, where: str) -> RunConfig:
        """Check every field, raising the project's one-line errors; returns self."""
        models.parse_hidden(self.hidden)
        _validate.one_of(where, "activation", self.activation, models.ACTIVATIONS)
        _validate.one_of(where, "model", self.model, [*models.MODELS, *LAB_MODELS])
        if self.model in models.MODELS:
            allowed = [*models.MODELS[self.model], *(models.BUG_VARIANTS if self.model == "mlp" else ())]
            _validate.one_of(where, "variant", self.variant, allowed)
        _validate.probability(where, "input_p", self.input_p)
        _validate.one_of(where, "init", self.init, models.INIT_CHOICES)
        _validate.positive_int(where, "epochs", self.epochs)
        if self.batch_size is not None:
            _validate.positive_int(where, "batch_size", self.batch_size)
        _validate.one_of(where, "optimizer", self.optimizer, OPTIMIZERS)
        _validate.positive_float(where, "lr", self.lr)
        _validate.nonnegative_float(where, "decay", self.decay)
        _validate.nonnegative_float(where, "l2", self.l2)
        _validate.nonnegative_float(where, "first_l2", self.first_l2)
        if self.max_norm is not None:
            _validate.positive_float(where, "max_norm", self.max_norm)
        _validate.one_of(where, "engine", self.engine, ENGINES)
        if self.engine == "torch":
            if self.model != "mlp":
                raise InvalidValueError(_validate.message(where, "model", "'mlp' with --engine torch", self.model,
                                                   "The other models train with the NumPy engine."))
            if self.options.get("residual"):
                raise InvalidValueError(_validate.message(where, "residual", "off with --engine torch", True,
                                                   "The residual MLP trains with the NumPy engine."))
            for name, value, off in (("max_norm", self.max_norm, None), ("decay", self.decay, 0.0),
                                     ("first_l2", self.first_l2, 0.0), ("init", self.init, "auto")):
                if value != off:
                    raise InvalidValueError(_validate.message(where, name, f"{off if off is not None else 0} with "
                                                       "--engine torch", value,
                                                       "This setting is applied by the NumPy engine only."))
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def replace(self, **changes) -> RunConfig:
        return replace(self, **changes)


def make_optimizer(name: str, lr: float, decay: float = 0.0) -> nn.Optimizer:
    if name == "sgd":
        return nn.SGD(lr, momentum=0.9, decay=decay)
    return {"adam": nn.Adam, "adamw": nn.AdamW}[name](lr, decay=decay)


def sample_shape(ds, cfg: RunConfig, where: str = "compare") -> tuple[int, ...]:
    """The shape one sample of ``ds`` is fed to ``cfg.model`` in; raises the one-line error when
    the model does not fit the data (before any run starts).

    ``mlp``, ``logistic``, ``bn-mlp``, ``ensemble``: flat features. ``cnn``: ``ds.image_shape``
    (``digits``: 1 x 8 x 8) on an image data set, else the flat features as a one-channel
    signal ``(1, L)`` (MNIST-1D: 1 x 40). ``rnn`` and ``gru``: ``(T, F)`` samples as stored, or
    the flat features read one per step ``(L, 1)`` (MNIST-1D: 40 x 1).
    """
    flat = int(np.prod(ds.input_shape))
    if cfg.model == "cnn":
        if ds.image_shape is not None:
            shape = tuple(int(s) for s in ds.image_shape)
            bad = models.SIGNAL_ONLY
        else:
            shape = tuple(int(s) for s in ds.input_shape) if len(ds.input_shape) == 2 else (1, flat)
            if models.cnn1d_length(shape[1]) < 1:
                raise InvalidValueError(_validate.message(where, "model", "'mlp', 'logistic', 'rnn' or 'gru' for a data set "
                                                   "of fewer than 3 features", cfg.model,
                                                   f"{ds.name} has {shape[1]} features: too short a signal for the "
                                                   "1-D CNN, and no (C, H, W) image layout; try --dataset mnist1d "
                                                   "or digits."))
            bad = models.IMAGE_ONLY
        if cfg.variant in bad:
            kind = "an image" if ds.image_shape is not None else "a signal"
            fits = [v for v in models.SPATIAL_VARIANTS if v not in bad]
            raise InvalidValueError(_validate.message(where, "variant", "one of " + ", ".join(map(repr, fits))
                                               + f" for the CNN on {kind}", cfg.variant,
                                               f"{ds.name} is {kind} of shape {shape}."))
        return shape
    if cfg.model in ("rnn", "gru"):  # (T, F) samples as stored, or flat features read one per step
        steps, features = ds.input_shape if len(ds.input_shape) == 2 else (flat, 1)
        return int(steps), int(features)
    return (flat,)


def build(ds, cfg: RunConfig, *, p: float, seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The network ``cfg.model`` for dataset ``ds`` and the shape one sample is fed in
    (:func:`sample_shape`: train_run reshapes the (N, 40) MNIST-1D signals to (N, 1, 40) for the
    CNN and (N, 40, 1) for the recurrent models)."""
    shape = sample_shape(ds, cfg)
    flat = int(np.prod(ds.input_shape))
    if cfg.model == "cnn":
        return models.cnn(shape, ds.classes, p=p, variant=cfg.variant, init=cfg.init, seed=seed), shape
    if cfg.model == "rnn":
        return models.rnn(shape[1], shape[0], ds.classes, p=p, variant=cfg.variant, seed=seed), shape
    if cfg.model == "gru":
        return models.gru(shape[1], shape[0], ds.classes, p=p, variant=cfg.variant, init=cfg.init, seed=seed), shape
    if cfg.model == "logistic":
        return models.logistic(flat, ds.classes, p=p, init=cfg.init, seed=seed), shape
    if cfg.model == "bn-mlp":
        before = p if cfg.options.get("order") == "before" else 0.0
        after = p if cfg.options.get("order") in ("before", "after") else 0.0
        return models.bn_mlp(flat, cfg.hidden[0], ds.classes, p_before=before, p_after=after, seed=seed), (flat,)
    if cfg.model == "ensemble":
        return models.ensemble_net(flat, cfg.hidden[0], ds.classes, p=p, head=cfg.options.get("head", "softmax"),
                                   head_units=int(cfg.options.get("head_units", 32)), seed=seed), (flat,)
    variant = models.BUG_VARIANTS.get(cfg.variant, cfg.variant)
    input_p = cfg.input_p if (p > 0 or cfg.input_layer) else 0.0
    model = models.mlp(flat, cfg.hidden, ds.classes, activation=cfg.activation, p=p, input_p=input_p,
                       variant=variant, l2=cfg.l2, first_l2=cfg.first_l2, init=cfg.init,
                       input_layer=cfg.input_layer or cfg.input_p > 0,
                       residual=bool(cfg.options.get("residual", False)), seed=seed)
    return model, (flat,)


class _EpochTimer:
    """Wall-clock and process CPU seconds of every epoch (CPU time is steadier on a shared machine)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def on_epoch_begin(self, epoch, model) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs, model) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.cpu.append(time.process_time() - self._c0)


def train_run(ds, cfg: RunConfig, *, p: float, seed: int, on_epoch: Callable[[], None] | None = None,
              checkpoint=None, checkpoint_every: int = 10) -> tuple[dict, nn.Module]:
    """Train one network with drop probability ``p`` and seed ``seed`` on dataset ``ds``.

    Returns ``(record, model)``. ``on_epoch`` is called after every epoch (progress bars).
    With ``checkpoint`` (a file path) the run is checkpointed every ``checkpoint_every``
    epochs and resumed bit-identically from that file if it exists.
    """
    model, shape = build(ds, cfg, p=p, seed=seed)
    loss = nn.SoftmaxCrossEntropy()
    dtype = next((q.value.dtype for q in model.parameters()), np.dtype(np.float32))
    X = ds.X_train.reshape((len(ds.X_train),) + shape).astype(dtype, copy=False)
    Xv = ds.X_val.reshape((len(ds.X_val),) + shape).astype(dtype, copy=False)

    class _Tick:
        def on_epoch_end(self, epoch, logs, model):
            if on_epoch is not None:
                on_epoch()

    timer = _EpochTimer() if cfg.epoch_times else None
    callbacks = [_Tick()] + ([nn.MaxNorm(cfg.max_norm)] if cfg.max_norm else []) + ([timer] if timer else [])
    diverged = getattr(nn, "DivergenceError", FloatingPointError)
    t0 = time.perf_counter()
    try:
        history = model.fit(X, ds.y_train, loss=loss, optimizer=make_optimizer(cfg.optimizer, cfg.lr, cfg.decay),
                            epochs=cfg.epochs, batch_size=cfg.batch_size,
                            validation_data=(Xv, ds.y_val) if cfg.validate_each_epoch else None,
                            verbose=False, callbacks=callbacks, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every, resume=checkpoint is not None)
    except diverged as exc:
        # a diverging run is a result (too large a learning rate), not a reason to stop the command
        epoch = getattr(exc, "epoch", None)
        loss_value = getattr(exc, "loss", None)
        return {"p": p, "seed": seed, "diverged": True,
                "diverged_epoch": int(epoch) if epoch is not None else None,
                "diverged_loss": _finite_or_text(loss_value), "error": str(exc),
                "metrics": None, "history": None}, model
    seconds = (time.perf_counter() - t0) / max(1, len(history["loss"]))
    train = model.evaluate(X, ds.y_train, loss)
    val = model.evaluate(Xv, ds.y_val, loss)
    metrics = {
        "train_accuracy": train["accuracy"], "val_accuracy": val["accuracy"],
        "train_loss": train["loss"], "val_loss": val["loss"],
        "gap": train["accuracy"] - val["accuracy"], "seconds_per_epoch": seconds,
    }
    record = {"p": p, "seed": seed, "metrics": metrics, "history": history}
    if timer is not None:
        record["epoch_seconds"], record["epoch_cpu_seconds"] = timer.times, timer.cpu
    return _strict(record), model


def _finite_or_text(value):
    """A float for JSON: finite numbers as they are, anything else as its text ('nan', 'inf')."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return v if np.isfinite(v) else str(v)


def _strict(record: dict) -> dict:
    """Non-finite metrics and history values become None (results files are strict JSON); the
    record's ``nonfinite`` says which metric was what (e.g. ``{"val_loss": "inf"}``)."""
    bad: dict[str, str] = {}
    metrics = dict(record["metrics"])
    for k, v in metrics.items():
        if v is not None and not np.isfinite(float(v)):
            bad[k] = str(float(v))
            metrics[k] = None
    history = {k: [x if x is None or np.isfinite(float(x)) else None for x in v] if isinstance(v, list) else v
               for k, v in (record.get("history") or {}).items()}
    out = {**record, "metrics": metrics, "history": history}
    if bad:
        out["nonfinite"] = bad
    return out
