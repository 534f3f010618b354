"""The default ``droplab compare`` experiment written in plain PyTorch: the baseline of the bench
section ``main_job``.

It is what a competent PyTorch user would write for the same experiment, not a copy of
droplab's internals: float32, ``torch.set_num_threads`` at the usable cores, the data as
pre-made tensors (no DataLoader), a fresh ``torch.randperm`` shuffle per epoch, ``nn.Linear``
and ``nn.ReLU`` with ``torch.nn.Dropout`` after each hidden layer (present at p = 0 in the
no-dropout arm, as in droplab), PyTorch's default initialisation, ``torch.optim.Adam`` at the
run's learning rate, cross-entropy on the logits. Like droplab's ``fit`` it records, every
epoch, the training batches' mean loss and accuracy and the validation loss and accuracy in
eval mode, and at the end evaluates the training and validation sets. Runs go one after the
other in this process (the user's script), each on all the threads.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["build", "train_run", "run_experiment"]


def build(torch, inputs: int, hidden, outputs: int, p: float):
    """``Linear -> ReLU -> Dropout(p)`` per hidden width, then ``Linear`` to the logits."""
    layers = []
    width = inputs
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU(), torch.nn.Dropout(p)]
        width = h
    layers.append(torch.nn.Linear(width, outputs))
    return torch.nn.Sequential(*layers)


def train_run(torch, data, *, hidden, p: float, seed: int, epochs: int, batch_size: int, lr: float) -> dict:
    """One run: ``data`` is ``(X, y, X_val, y_val)`` as float32 / int64 tensors. Returns the record."""
    X, y, Xv, yv = data
    torch.manual_seed(seed)
    classes = int(max(int(y.max()), int(yv.max())) + 1)
    model = build(torch, X.shape[1], hidden, classes, p)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ce = torch.nn.functional.cross_entropy
    n = X.shape[0]
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n)
        total, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = X[idx], y[idx]
            out = model(xb)
            loss = ce(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        history["loss"].append(total / n)
        history["accuracy"].append(correct / n)
        vl, va = _evaluate(torch, model, Xv, yv)
        history["val_loss"].append(vl)
        history["val_accuracy"].append(va)
    tl, ta = _evaluate(torch, model, X, y)
    vl, va = _evaluate(torch, model, Xv, yv)
    return {"p": p, "seed": seed, "metrics": {"train_accuracy": ta, "val_accuracy": va, "train_loss": tl,
                                              "val_loss": vl}, "history": history}


def _evaluate(torch, model, X, y) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(X)
        return float(torch.nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def run_experiment(torch, ds, *, arms, seeds, hidden, epochs: int, batch_size: int, lr: float,
                   threads: int) -> dict:
    """Every (arm, seed) run of the experiment, one after the other, on ``threads`` threads.

    ``arms``: ``[(label, p), ...]``. Returns ``{"seconds", "runs"}`` (the wall time includes
    making the tensors)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        data = (torch.from_numpy(np.ascontiguousarray(ds.X_train.reshape(len(ds.X_train), -1), np.float32)),
                torch.from_numpy(np.asarray(ds.y_train, np.int64)),
                torch.from_numpy(np.ascontiguousarray(ds.X_val.reshape(len(ds.X_val), -1), np.float32)),
                torch.from_numpy(np.asarray(ds.y_val, np.int64)))
        runs = []
        for label, p in arms:
            for s in seeds:
                rec = train_run(torch, data, hidden=hidden, p=p, seed=s, epochs=epochs, batch_size=batch_size, lr=lr)
                rec["arm"] = label
                runs.append(rec)
        return {"seconds": time.perf_counter() - t0, "runs": runs}
    finally:
        torch.set_num_threads(old)
