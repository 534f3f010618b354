"""One training run of the lab: build the network, fit it, measure it, return its record.

Every command that trains (compare, sweep, study) goes through :func:`train_run`, so a
record always has the same keys: ``p``, ``seed``, ``metrics`` (``train_accuracy`` measured
in eval mode, ``val_accuracy``, ``train_loss``, ``val_loss``, ``gap``,
``seconds_per_epoch``) and ``history``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from droplab import _validate, nn
from droplab.lab import models

__all__ = ["RunConfig", "build", "train_run", "OPTIMIZERS", "summarize"]

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class RunConfig:
    """What one run trains: the network, the optimiser and the schedule (not p or the seed)."""

    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    variant: str = "dropout"
    input_p: float = 0.0
    epochs: int = 150
    batch_size: int | None = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    l2: float = 0.0
    max_norm: float | None = None
    model: str = "mlp"
    extra: dict = field(default_factory=dict)

    def validate(self, where: str) -> RunConfig:
        """Check every field, raising the project's one-line errors; returns self."""
        models.parse_hidden(self.hidden)
        _validate.one_of(where, "activation", self.activation, models.ACTIVATIONS)
        _validate.one_of(where, "model", self.model, models.MODELS)
        _validate.one_of(where, "variant", self.variant, models.MODELS[self.model])
        _validate.probability(where, "input_p", self.input_p)
        _validate.positive_int(where, "epochs", self.epochs)
        if self.batch_size is not None:
            _validate.positive_int(where, "batch_size", self.batch_size)
        _validate.one_of(where, "optimizer", self.optimizer, OPTIMIZERS)
        _validate.positive_float(where, "lr", self.lr)
        _validate.nonnegative_float(where, "l2", self.l2)
        if self.max_norm is not None:
            _validate.positive_float(where, "max_norm", self.max_norm)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def make_optimizer(name: str, lr: float) -> nn.Optimizer:
    return {"adam": nn.Adam, "adamw": nn.AdamW, "sgd": lambda lr: nn.SGD(lr, momentum=0.9)}[name](lr)


def build(ds, cfg: RunConfig, *, p: float, seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The network ``cfg.model`` for dataset ``ds`` and the shape one sample is fed in.

    ``mlp``: flat features; ``cnn``: ``ds.image_shape`` (``digits``: 1 x 8 x 8); ``rnn``: the
    flat features read as a sequence of ``(steps, 1)`` (MNIST-1D: 40 steps).
    """
    flat = int(np.prod(ds.input_shape))
    if cfg.model == "cnn":
        if ds.image_shape is None:
            raise ValueError(_validate.message("compare", "model", "'mlp' or 'rnn' for a data set without an "
                                               "image shape", cfg.model, f"{ds.name} has no (C, H, W) layout; "
                                               "try --dataset digits."))
        shape = tuple(int(s) for s in ds.image_shape)
        return models.cnn(shape, ds.classes, p=p, variant=cfg.variant, seed=seed), shape
    if cfg.model == "rnn":  # (T, F) samples as stored, or flat features read one per step
        steps, features = ds.input_shape if len(ds.input_shape) == 2 else (flat, 1)
        return (models.rnn(int(features), int(steps), ds.classes, p=p, variant=cfg.variant, seed=seed),
                (int(steps), int(features)))
    model = models.mlp(flat, cfg.hidden, ds.classes, activation=cfg.activation, p=p,
                       input_p=cfg.input_p if p > 0 else 0.0, variant=cfg.variant, l2=cfg.l2, seed=seed)
    return model, (flat,)


def train_run(ds, cfg: RunConfig, *, p: float, seed: int, on_epoch: Callable[[], None] | None = None,
              checkpoint=None, checkpoint_every: int = 10) -> tuple[dict, nn.Module]:
    """Train one network with drop probability ``p`` and seed ``seed`` on dataset ``ds``.

    Returns ``(record, model)``. ``on_epoch`` is called after every epoch (progress bars).
    With ``checkpoint`` (a file path) the run is checkpointed every ``checkpoint_every``
    epochs and resumed bit-identically from that file if it exists.
    """
    model, shape = build(ds, cfg, p=p, seed=seed)
    loss = nn.SoftmaxCrossEntropy()
    X = ds.X_train.reshape((len(ds.X_train),) + shape)
    Xv = ds.X_val.reshape((len(ds.X_val),) + shape)

    class _Tick:
        def on_epoch_end(self, epoch, logs, model):
            if on_epoch is not None:
                on_epoch()

    callbacks = [_Tick()] + ([nn.MaxNorm(cfg.max_norm)] if cfg.max_norm else [])
    diverged = getattr(nn, "DivergenceError", FloatingPointError)
    t0 = time.perf_counter()
    try:
        history = model.fit(X, ds.y_train, loss=loss, optimizer=make_optimizer(cfg.optimizer, cfg.lr),
                            epochs=cfg.epochs, batch_size=cfg.batch_size, validation_data=(Xv, ds.y_val),
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


def summarize(runs: list[dict], keys=("train_accuracy", "val_accuracy", "gap", "train_loss", "val_loss",
                                      "seconds_per_epoch")) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof=1 when n > 1) of each metric over ``runs``.

    Diverged runs (``metrics`` None) and metrics recorded as None (non-finite) are left out: ``n``
    says how many runs each figure rests on, ``diverged`` how many runs diverged; a metric no
    run has gives ``mean`` and ``std`` None.
    """
    out: dict = {}
    for k in keys:
        v = np.asarray([r["metrics"][k] for r in runs if r.get("metrics") and r["metrics"].get(k) is not None],
                       dtype=float)
        if len(v) == 0:
            out[k] = {"mean": None, "std": None, "n": 0}
            continue
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
    out["diverged"] = sum(1 for r in runs if r.get("diverged"))
    return out
