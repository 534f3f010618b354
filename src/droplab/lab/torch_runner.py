"""``--engine torch``: the lab's training run, through PyTorch (moved here from
``droplab.torch.train``: the library never imports the lab).

:func:`train_run` has the signature and the record format of
:func:`droplab.lab.experiment.train_run`. It builds the NumPy engine's network for the
config and seed, then copies it into torch: the same initial weights, and dropout layers
with the same Philox keys (so the same masks), and it shuffles from the same seeded
generator as ``fit``. Only the arithmetic differs (torch's matmuls and optimiser), so the
two backends agree up to floating-point drift, and their accuracies within seed noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from droplab.errors import InvalidValueError
import numpy as np
import torch

from droplab import _rng, _validate, nn
from droplab._rng import NoiseStream
from droplab.lab import models
from droplab.lab.experiment import RunConfig
from droplab.torch.modules import Dropout

__all__ = ["to_torch", "TorchModel", "train_run"]


def _activation(layer: nn.Module) -> torch.nn.Module | None:
    simple = {nn.ReLU: torch.nn.ReLU, nn.Tanh: torch.nn.Tanh, nn.Sigmoid: torch.nn.Sigmoid, nn.SELU: torch.nn.SELU}
    for cls, make in simple.items():
        if type(layer) is cls:
            return make()
    if type(layer) is nn.LeakyReLU:
        return torch.nn.LeakyReLU(layer.alpha)
    return None


def to_torch(model: nn.Sequential) -> torch.nn.Sequential:
    """A torch copy of a NumPy-engine MLP: Dense, activations and ``nn.Dropout`` (any axes).

    Dense weights are transposed into ``torch.nn.Linear``; each dropout layer becomes a
    :class:`droplab.torch.Dropout` with the same noise stream, ``p``, ``axes`` and ``inverted``.

    Raises:
        ValueError: a layer with no torch counterpart here (named in the message).
    """
    layers: list[torch.nn.Module] = []
    for i, layer in enumerate(model.layers):
        if type(layer) is nn.Dense:
            lin = torch.nn.Linear(layer.in_features, layer.out_features,
                                  dtype=torch.float32 if layer.dtype == np.float32 else torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.value.T)))
                lin.bias.copy_(torch.from_numpy(layer.bias.value))
            lin.l2 = layer.l2
            layers.append(lin)
        elif type(layer) is nn.Dropout:
            d = Dropout(layer.p, axes=layer.axes, inverted=layer.inverted)
            d.rng = NoiseStream.from_state(layer.rng.state())  # the same masks, from the same call on
            layers.append(d)
        elif (act := _activation(layer)) is not None:
            layers.append(act)
        else:
            raise InvalidValueError(_validate.message(
                "compare --backend torch", "model", "an MLP of Dense, activations and Dropout layers",
                f"layer {i} {type(layer).__name__}", "Use --backend numpy for this variant."))
    return torch.nn.Sequential(*layers)


class TorchModel:
    """A trained torch network with the NumPy engine's ``predict`` (probabilities, eval mode)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        was = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return torch.softmax(self.module(torch.from_numpy(X)), 1).numpy()
        finally:
            self.module.train(was)


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    # the NumPy engine's defaults: eps 1e-7, AdamW weight decay 0.01, SGD momentum 0.9
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-7)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, eps=1e-7, weight_decay=0.01)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _evaluate(net, X, y) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        out = net(X)
        loss = torch.nn.functional.cross_entropy(out, y)
        acc = (out.argmax(1) == y).double().mean()
    return float(loss), float(acc)


def train_run(ds, cfg: RunConfig, *, p: float, seed: int,
              on_epoch: Callable[[], None] | None = None) -> tuple[dict, TorchModel]:
    """Train the lab's MLP for ``cfg`` with drop probability ``p`` and ``seed``, in PyTorch.

    Returns ``(record, model)`` as :func:`droplab.lab.experiment.train_run`: ``record`` has
    ``p``, ``seed``, ``backend`` ("torch"), ``metrics`` (``train_accuracy`` in eval mode,
    ``val_accuracy``, ``train_loss``, ``val_loss``, ``gap``, ``seconds_per_epoch``) and
    ``history`` (``loss``, ``accuracy`` in training mode; ``val_loss``, ``val_accuracy``).
    """
    np_model = models.mlp(int(np.prod(ds.input_shape)), cfg.hidden, ds.classes, activation=cfg.activation,
                          p=p, input_p=cfg.input_p if p > 0 else 0.0, variant=cfg.variant, l2=cfg.l2, seed=seed)
    net = to_torch(np_model)
    g = _rng.generator(np_model._fit_seed)  # fit's shuffling stream for this seed
    X = torch.from_numpy(np.ascontiguousarray(ds.X_train.reshape(len(ds.X_train), -1), dtype=np.float32))
    y = torch.from_numpy(np.asarray(ds.y_train, dtype=np.int64))
    Xv = torch.from_numpy(np.ascontiguousarray(ds.X_val.reshape(len(ds.X_val), -1), dtype=np.float32))
    yv = torch.from_numpy(np.asarray(ds.y_val, dtype=np.int64))
    opt = _optimizer(cfg.optimizer, net.parameters(), cfg.lr)
    threads = torch.get_num_threads()
    # The lab's networks are small: torch's OpenMP pool, spin-waiting at every tiny op, ran
    # 10-20x slower than one thread on the shared 2-core machine (measured); restored below.
    torch.set_num_threads(1)
    try:
        return _train(net, g, X, y, Xv, yv, opt, cfg, p, seed, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(net, g, X, y, Xv, yv, opt, cfg, p, seed, on_epoch):
    penalised = [m for m in net if isinstance(m, torch.nn.Linear) and getattr(m, "l2", 0.0)]
    n = len(X)
    bs = cfg.batch_size
    nb = 1 if bs is None or bs >= n else -(-n // bs)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        net.train()
        order = torch.from_numpy(g.permutation(n)) if nb > 1 else None
        total, correct = 0.0, 0.0
        for b in range(nb):
            if order is None:
                xb, yb = X, y
            else:
                idx = order[b * bs:(b + 1) * bs]
                xb, yb = X[idx], y[idx]
            out = net(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            objective = loss + sum((m.l2 * m.weight.pow(2).sum() for m in penalised), torch.zeros(()))
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            correct += float((out.detach().argmax(1) == yb).sum())
        history["loss"].append(total / n)
        history["accuracy"].append(correct / n)
        vl, va = _evaluate(net, Xv, yv)
        history["val_loss"].append(vl)
        history["val_accuracy"].append(va)
        if on_epoch is not None:
            on_epoch()
    seconds = (time.perf_counter() - t0) / cfg.epochs
    train_loss, train_acc = _evaluate(net, X, y)
    val_loss, val_acc = _evaluate(net, Xv, yv)
    metrics = {"train_accuracy": train_acc, "val_accuracy": val_acc, "train_loss": train_loss,
               "val_loss": val_loss, "gap": train_acc - val_acc, "seconds_per_epoch": seconds}
    return {"p": p, "seed": seed, "backend": "torch", "metrics": metrics, "history": history}, TorchModel(net)
