"""``droplab ensemble``: weight scaling vs MC averaging vs the exact ensemble of all 2^n sub-networks.

A network with ONE dropout layer of ``n`` units (``n <= 16``) defines ``2^n`` thinned
sub-networks, one per keep/drop mask ``m``, each with probability
``P(m) = p^dropped (1-p)^kept`` (``p``: probability that a unit is dropped, not the keep
probability). This module computes, on held-out data:

* **weight scaling**: one eval-mode forward (what ``predict`` does);
* **MC averaging**: the arithmetic mean of the softmax outputs of ``T`` random masks,
  ``T = 1 .. 1000``, repeated to show the spread;
* the **exact arithmetic mean** ``sum_m P(m) softmax(z_m)`` and the **exact normalised
  geometric mean** ``softmax(sum_m P(m) log softmax(z_m))`` over all ``2^n`` masks.

The enumeration is vectorised: the part of the network before the dropout layer runs once
(``h``, shape ``(N, n)``); a chunk of ``C`` masks times ``h`` gives ``(C*N, n)`` thinned
activations that go through the layers after the dropout layer as one batch, a few matmuls
per chunk instead of ``2^n`` model calls.

Why weight scaling is the geometric mean when dropout feeds the final softmax layer: the
normalised geometric mean of ``softmax(W^T (m*h) + b)`` is proportional to
``exp(E_m[W^T (m*h) + b]) = exp(W^T E[m*h] + b)``, the log-normaliser of each mask cancels
on renormalisation, and ``E[m*h] = h`` for inverted dropout: exactly the eval forward. With a
ReLU between the dropout layer and the softmax, ``E[relu(.)] != relu(E[.])`` and it is only
an approximation (Srivastava et al. 2014, section 7.5 and Figure 11; Baldi and Sadowski 2013).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab import _validate, kernels, nn

__all__ = [
    "HELP", "MAX_UNITS", "Split", "ExactMeans", "split", "mask_weights", "exact_means",
    "weight_scaling", "mc_samples", "mc_curve", "bernstein_bound", "build_network",
]

HELP = "weight scaling vs MC averaging vs the exact average over all 2^n sub-networks"
MAX_UNITS = 16  # 2**16 = 65536 sub-networks
WHERE = "ensemble"


@dataclass
class Split:
    """A network cut at its one dropout layer: ``head(dropout(body(x)))``."""

    body: list[nn.Module]
    dropout: nn.Dropout
    head: list[nn.Module]


@dataclass
class ExactMeans:
    """The exact averages over every mask, each ``(N, K)`` (float64).

    Attributes:
        arithmetic: ``sum_m P(m) softmax(z_m)``.
        geometric: ``softmax(sum_m P(m) log softmax(z_m))`` (the normalised geometric mean).
        second_moment: ``sum_m P(m) softmax(z_m)**2``, so that the variance of one MC sample
            is ``second_moment - arithmetic**2``.
        masks: how many masks had a non-zero probability (and were evaluated).
        units: ``n``, the width of the dropout layer.
    """

    arithmetic: np.ndarray
    geometric: np.ndarray
    second_moment: np.ndarray
    masks: int
    units: int

    @property
    def variance(self) -> np.ndarray:
        """The variance of one MC sample of each probability, ``(N, K)``."""
        return np.maximum(self.second_moment - self.arithmetic ** 2, 0.0)


def split(model: nn.Module) -> Split:
    """Cut a ``Sequential`` at its only dropout layer, which must be a plain ``nn.Dropout``.

    Raises:
        TypeError: ``model`` is not a Sequential, or the dropout layer is a variant whose
            masks are not one independent Bernoulli per unit.
        ValueError: no dropout layer, or more than one.
    """
    if not isinstance(model, nn.Sequential):
        raise InvalidTypeError(_validate.message(WHERE, "model", "an nn.Sequential", type(model).__name__))
    layers = list(model.layers)
    found = [i for i, layer in enumerate(layers) for m in layer.modules() if m.is_dropout]
    if len(found) != 1:
        raise InvalidValueError(_validate.message(WHERE, "model", "a network with exactly one dropout layer",
                                           f"{len(found)} dropout layers"))
    i = found[0]
    layer = layers[i]
    if type(layer) is not nn.Dropout or layer.axes is not None:
        raise InvalidTypeError(_validate.message(
            WHERE, "model", "a network whose dropout layer is nn.Dropout with axes=None",
            repr(layer), "Enumeration needs one independent Bernoulli mask value per unit."))
    return Split(layers[:i], layer, layers[i + 1:])


def mask_weights(units: int, p: float, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keep bits and probabilities of masks ``start .. stop-1`` of ``2**units``.

    Mask ``i`` keeps unit ``j`` when bit ``j`` of ``i`` is set. ``p`` is the drop probability;
    the probability of a mask is ``p**dropped * (1-p)**kept``, so the weights of all
    ``2**units`` masks sum to 1.

    Example:
        >>> bits, w = mask_weights(3, 0.25)
        >>> bits.shape, float(w.sum())
        ((8, 3), 1.0)
    """
    stop = 2 ** units if stop is None else stop
    idx = np.arange(start, stop, dtype=np.int64)
    bits = ((idx[:, None] >> np.arange(units, dtype=np.int64)) & 1).astype(bool)
    kept = bits.sum(axis=1)
    w = np.power(float(p), units - kept) * np.power(1.0 - float(p), kept)
    return bits, w


def _forward(layers: Sequence[nn.Module], x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x)
    return x


class _EvalMode:
    """Puts the whole model in eval mode, then restores every module's own mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self

    def __exit__(self, *exc) -> None:
        for m, t in self.modes:
            m.training = t


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_x(X) -> np.ndarray:
    return _validate.finite_array(WHERE, "X", X, ndim=None)


def weight_scaling(model: nn.Module, X) -> np.ndarray:
    """Softmax of one eval-mode forward (float64 ``(N, K)``): weight-scaling inference."""
    X = _check_x(X)
    with _EvalMode(model):
        return np.exp(_log_softmax(model.forward(X)))


def exact_means(model: nn.Module, X, *, chunk_elements: int = 1 << 22) -> ExactMeans:
    """The exact arithmetic and geometric means of the softmax over all masks of the dropout layer.

    Every mask with non-zero probability is evaluated (one mask for ``p = 0``), in chunks of
    about ``chunk_elements`` activations; the body runs once, the head once per chunk.

    Args:
        model: a Sequential with exactly one ``nn.Dropout`` of at most ``MAX_UNITS`` units
            feeding only deterministic layers; its outputs are logits.
        X: inputs ``(N, ...)``.
        chunk_elements (int): activations held per chunk (memory knob). Default 2**22.
    """
    parts = split(model)
    X = _check_x(X)
    chunk_elements = _validate.positive_int(WHERE, "chunk_elements", chunk_elements)
    with _EvalMode(model):
        h = np.asarray(_forward(parts.body, X))
        if h.ndim != 2:
            raise InvalidValueError(_validate.message(WHERE, "model", "a dropout layer on (N, n) activations",
                                               f"activations of shape {h.shape}"))
        n_rows, units = h.shape
        if units > MAX_UNITS:
            raise InvalidValueError(_validate.message(WHERE, "units", f"at most {MAX_UNITS} (2**{MAX_UNITS} sub-networks)",
                                               units))
        layer = parts.dropout
        p_eff = kernels.effective_p(layer.p)
        kept_value = layer.scale  # what a kept unit is multiplied by in training
        am = gm = m2 = None
        evaluated = 0
        per_chunk = max(1, chunk_elements // max(1, n_rows * units))
        for start in range(0, 2 ** units, per_chunk):
            bits, w = mask_weights(units, p_eff, start, min(2 ** units, start + per_chunk))
            keep = w > 0  # 0 * log(0) never enters the geometric mean
            if not keep.any():
                continue
            bits, w = bits[keep], w[keep]
            values = np.where(bits, kept_value, 0.0).astype(h.dtype)
            thinned = (values[:, None, :] * h[None, :, :]).reshape(-1, units)
            logp = _log_softmax(_forward(parts.head, thinned))
            logp = logp.reshape(len(w), n_rows, -1)
            probs = np.exp(logp)
            a = np.tensordot(w, probs, axes=1)
            g = np.tensordot(w, logp, axes=1)
            s = np.tensordot(w, probs * probs, axes=1)
            am, gm, m2 = (a, g, s) if am is None else (am + a, gm + g, m2 + s)
            evaluated += len(w)
    return ExactMeans(arithmetic=am, geometric=np.exp(_log_softmax(gm)), second_moment=m2,
                      masks=evaluated, units=units)


def mc_samples(model: nn.Module, X, samples: int, *, block: int = 100):
    """Yield blocks ``(t, N, K)`` of softmax outputs of MC dropout, ``samples`` in all.

    Each sample draws the dropout layer's own masks (one independent mask per input); every
    other layer stays in eval mode, and the body runs once.
    """
    parts = split(model)
    X = _check_x(X)
    samples = _validate.positive_int(WHERE, "samples", samples)
    with _EvalMode(model):
        h = np.asarray(_forward(parts.body, X))
        layer = parts.dropout
        done = 0
        while done < samples:
            t = min(block, samples - done)
            layer.training = True
            dropped = layer.forward(np.tile(h, (t, 1)))
            layer.training = False
            z = _forward(parts.head, dropped)
            yield np.exp(_log_softmax(z)).reshape(t, len(h), -1)
            done += t


def mc_curve(model: nn.Module, X, y, Ts: Sequence[int], *, repeats: int = 10,
             reference: np.ndarray | None = None) -> dict[str, list]:
    """Error and NLL of the MC average of ``T`` samples for each ``T`` in ``Ts``, ``repeats`` times.

    Returns a dict of lists over ``Ts``: ``error_mean``/``error_std``, ``nll_mean``/``nll_std``
    over the repeats, and, when ``reference`` (e.g. the exact arithmetic mean) is given,
    ``abs_diff_mean``: the mean over inputs, classes and repeats of ``|MC_T - reference|``.
    """
    y = _validate.labels(WHERE, "y", y)
    Ts = sorted({_validate.positive_int(WHERE, "T", int(t)) for t in Ts})
    repeats = _validate.positive_int(WHERE, "repeats", repeats)
    err = np.zeros((repeats, len(Ts)))
    nll = np.zeros((repeats, len(Ts)))
    diff = np.zeros((repeats, len(Ts)))
    rows = np.arange(len(y))
    for r in range(repeats):
        total, seen, k = None, 0, 0
        for block in mc_samples(model, X, Ts[-1]):
            csum = np.cumsum(block, axis=0) + (0.0 if total is None else total)
            while k < len(Ts) and Ts[k] <= seen + len(block):
                mean = csum[Ts[k] - seen - 1] / Ts[k]
                err[r, k] = 1.0 - float((mean.argmax(axis=1) == y).mean())
                nll[r, k] = float(-np.log(np.clip(mean[rows, y], 1e-12, 1.0)).mean())
                if reference is not None:
                    diff[r, k] = float(np.abs(mean - reference).mean())
                k += 1
            total, seen = csum[-1], seen + len(block)
    sd = (lambda a: a.std(axis=0, ddof=1)) if repeats > 1 else (lambda a: np.zeros(a.shape[1]))
    out = {"T": Ts, "error_mean": err.mean(0).tolist(), "error_std": sd(err).tolist(),
           "nll_mean": nll.mean(0).tolist(), "nll_std": sd(nll).tolist()}
    if reference is not None:
        out["abs_diff_mean"] = diff.mean(0).tolist()
    return out


def bernstein_bound(variance, samples: int, delta: float) -> np.ndarray:
    """A deviation ``t`` with ``P(|mean of T samples - mu| >= t) <= delta`` for values in [0, 1].

    Bernstein's inequality for ``T`` independent draws in [0, 1] with variance ``sigma^2``:
    ``P(|mean - mu| >= t) <= 2 exp(-T t^2 / (2 sigma^2 + 2t/3))``. Setting the right side to
    ``delta`` with ``L = log(2/delta)`` and solving the quadratic gives
    ``t = (L/3 + sqrt(L^2/9 + 2 T sigma^2 L)) / T`` (about ``sqrt(2L) sigma/sqrt(T)``, the
    z-score form with ``z = sqrt(2L)``, plus a small-sample term).

    Example:
        >>> t = bernstein_bound(np.array([0.0, 0.25]), 100, 1e-6)
        >>> bool(t[0] < t[1]), bool(t[1] < 1)
        (True, True)
    """
    L = math.log(2.0 / delta)
    var = np.asarray(variance, dtype=np.float64)
    return (L / 3 + np.sqrt(L * L / 9 + 2 * samples * var * L)) / samples


def _row(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    rows = np.arange(len(y))
    return {"error": 1.0 - float((probs.argmax(axis=1) == y).mean()),
            "nll": float(-np.log(np.clip(probs[rows, y], 1e-12, 1.0)).mean())}


def build_network(inputs: int, units: int, outputs: int, *, p: float, head: str, head_units: int = 32,
                  seed=None) -> nn.Sequential:
    """The experiment's float64 network, built in the lab's one place for models
    (:func:`droplab.lab.models.ensemble_net`: ``Dense -> ReLU -> Dropout(p)``, then a softmax
    layer or ``Dense -> ReLU -> Dense``). ``p`` is the drop probability.

    Example:
        >>> net = build_network(4, 8, 3, p=0.5, head="relu", seed=0)
        >>> net.forward(np.zeros((2, 4))).shape, len(split(net).head)
        ((2, 3), 3)
    """
    from droplab.lab import models

    return models.ensemble_net(inputs, units, outputs, p=p, head=head, head_units=head_units, seed=seed)


def relu_gap(model: nn.Module, X, samples: int = 200) -> float | None:
    """For a ReLU between the dropout layer and the softmax: how far weight scaling's input to
    that ReLU misleads it, as ``mean(E_m[relu(z_m)] - relu(E_m[z_m])) / mean(E_m[relu(z_m)])``
    over inputs and units (Jensen's gap, >= 0; 0 when no unit's input changes sign across
    masks). ``z_m`` is the head's first layer output under mask ``m``; None without such a ReLU."""
    parts = split(model)
    if len(parts.head) < 3:
        return None
    X = _check_x(X)
    with _EvalMode(model):
        h = np.asarray(_forward(parts.body, X))
        layer = parts.dropout
        acc = np.zeros((len(h), parts.head[0].out_features))
        for _ in range(samples):
            layer.training = True
            z = parts.head[0].forward(layer.forward(h))
            layer.training = False
            acc += np.maximum(z, 0.0)
        mean_relu = acc / samples
        relu_mean = np.maximum(parts.head[0].forward(h), 0.0)  # E_m[z_m] = z(h) for inverted dropout
    denom = float(mean_relu.mean())
    return float((mean_relu - relu_mean).mean() / denom) if denom > 0 else 0.0


# ------------------------------------------------------------------------------ the command

T_GRID = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000)


QUICK = {"units": 10, "epochs": 40, "max_T": 300, "repeats": 5}


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type
    from droplab.lab import flags

    flags.add(parser, ["dataset", "epochs", "batch_size", "lr", "seeds", "workers", "backend", "address"],
              defaults={"dataset": "digits", "epochs": 150, "batch_size": 64, "lr": 3e-3}, quick=QUICK)
    parser.add_argument("--units", type=flag_type("units"), default=argparse.SUPPRESS,
                        help=f"width n of the dropout layer, 2^n sub-networks ({bounds_help('units')}) "
                             "(default: 16; --quick: 10)")
    parser.add_argument("--p", type=flag_type("p"), default=0.5,
                        help="drop probability of the dropout layer (0 to 1, 1 excluded)")
    parser.add_argument("--head", default="both",
                        help="softmax (dropout feeds the output layer), relu (a ReLU layer between) or both")
    parser.add_argument("--head-units", type=flag_type("head_units"), default=32,
                        help=f"width of the ReLU layer of the relu head ({bounds_help('head_units')})")
    parser.add_argument("--max-T", type=flag_type("max_T"), default=argparse.SUPPRESS,
                        help=f"largest number of MC samples ({bounds_help('max_T')}) (default: 1000; --quick: 300)")
    parser.add_argument("--repeats", type=flag_type("mc_repeats"), default=argparse.SUPPRESS,
                        help=f"MC repeats per T, for the spread ({bounds_help('mc_repeats')}) "
                             "(default: 10; --quick: 5)")
    parser.add_argument("--quick", action="store_true",
                        help="a small setting (--units 10 --epochs 40 --max-T 300 --repeats 5; flags given win)")


def _evaluate(model, ds, task, *, Ts, repeats) -> dict:
    """Runs in the worker after training: every estimate of this network on the validation set."""
    Xv = ds.X_val.reshape(len(ds.X_val), -1).astype(np.float64)
    exact = exact_means(model, Xv)
    ws = weight_scaling(model, Xv)
    curve = mc_curve(model, Xv, ds.y_val, Ts, repeats=repeats, reference=exact.arithmetic)
    ws_row = _row(ws, ds.y_val)
    match = next((t for t, e in zip(curve["T"], curve["error_mean"]) if e <= ws_row["error"]), None)
    match_nll = next((t for t, e in zip(curve["T"], curve["nll_mean"]) if e <= ws_row["nll"]), None)
    kl = max(0.0, float(np.mean(np.sum(exact.geometric * (np.log(np.clip(exact.geometric, 1e-300, None))
                                                         - np.log(np.clip(ws, 1e-300, None))), axis=1))))
    head = task.cfg.options["head"]
    return {"estimate": {
        "network": f"{head} head", "seed": task.seed, "units": exact.units, "masks": exact.masks,
        "weight_scaling": ws_row, "exact_arithmetic": _row(exact.arithmetic, ds.y_val),
        "exact_geometric": _row(exact.geometric, ds.y_val),
        "mc": curve, "mc_T_matching_weight_scaling_error": match, "mc_T_matching_weight_scaling_nll": match_nll,
        "ws_vs_geometric": {"max_abs_prob_diff": float(np.abs(ws - exact.geometric).max()), "mean_kl": kl},
        "ws_vs_arithmetic": {"max_abs_prob_diff": float(np.abs(ws - exact.arithmetic).max())},
        "relu_gap": relu_gap(model, Xv)}}


def run(args: argparse.Namespace) -> int:
    import functools

    from rich.console import Console

    from droplab.lab import experiment, flags, runner, stats, tables
    from droplab.lab._results import done_line, force_flag, results_dir, write_results

    flags.resolve(args, WHERE)
    for name, default in (("units", 16), ("max_T", 1000), ("repeats", 10)):
        if not hasattr(args, name):
            setattr(args, name, QUICK[name] if args.quick else default)
    units = _validate.positive_int(WHERE, "units", args.units)
    if units > MAX_UNITS:
        raise InvalidValueError(_validate.message(WHERE, "units", f"at most {MAX_UNITS} (2**{MAX_UNITS} sub-networks)",
                                           units))
    p = _validate.probability(WHERE, "p", args.p, allow_one=False)
    heads = ["softmax", "relu"] if args.head == "both" else [_validate.one_of(WHERE, "head", args.head,
                                                                             ("softmax", "relu", "both"))]
    head_units = _validate.positive_int(WHERE, "head_units", args.head_units)
    batch = None if args.batch_size == 0 else args.batch_size
    max_T = _validate.positive_int(WHERE, "max_T", args.max_T)
    repeats = _validate.positive_int(WHERE, "repeats", args.repeats)
    Ts = [t for t in T_GRID if t < max_T] + [max_T]
    seeds = [args.seed + i for i in range(args.seeds)]
    cfgs = {h: experiment.RunConfig(dataset=args.dataset, model="ensemble", hidden=(units,), epochs=args.epochs,
                                    batch_size=batch, lr=args.lr, optimizer="adam",
                                    options={"head": h, "head_units": head_units}).validate(WHERE) for h in heads}
    ds = runner.dataset(cfgs[heads[0]])
    measure = functools.partial(_evaluate, Ts=Ts, repeats=repeats)
    tasks = [runner.Task(runner.run_key({"config": cfgs[h].to_dict(), "p": p, "T": Ts, "repeats": repeats}, s),
                         cfgs[h], p, s, {"network": f"{h} head"}, measure=measure) for h in heads for s in seeds]
    console = Console(quiet=args.quiet)
    # the folder is checked and locked before the first network trains; its files are switched in at the end
    with results_dir(args.out, "ensemble", force=force_flag(args)) as tmp:
        journal = runner.Journal.hidden(args.out, {"command": "ensemble", "runs": [t.key for t in tasks]}, WHERE)
        ran = runner.execute(tasks, workers=args.workers, backend_name=args.backend, address=args.address,
                             journal=journal, console=console, quiet=args.quiet, description="ensemble")
        runs = [{k: v for k, v in r.items() if k != "estimate"} for r in ran.records]
        estimates = [r["estimate"] for r in ran.records if r.get("estimate")]
        config = {"dataset": ds.name, "dataset_description": ds.description, "seed": args.seed, "seeds": seeds,
                  "units": units, "p": p, "heads": heads, "head_units": head_units, "epochs": args.epochs,
                  "batch_size": batch, "lr": args.lr, "optimizer": "adam", "T": Ts, "repeats": repeats,
                  "quick": bool(args.quick),
                  "execution": {"backend": args.backend, "workers": args.workers,
                                "address": runner.public_address(args.address)}}
        summary = _summary(estimates, heads)
        reading = _reading(estimates, heads, p, units)
        diverged = sum(1 for r in runs if r.get("diverged"))
        if diverged:  # recorded with "diverged": true; the table and readings leave them out
            reading.insert(0, f"{diverged} of {len(runs)} network(s) diverged while training (recorded with "
                              "\"diverged\": true); the table covers the others.")
        table = tables.table(f"droplab ensemble: validation error and NLL, {len(seeds)} network(s) per head",
                             ["network", "method", "error (%)", "NLL"],
                             [[r["network"], r["method"], stats.fmt(r["error"], 100, 2), stats.fmt(r["nll"], 1, 4)]
                              for r in summary], note=stats.legend(len(seeds)), left=2, drop=("NLL",))
        write_results(tmp, "ensemble", config=config, runs=runs, summary=summary, tables=[table], reading=reading,
                      estimates=estimates, statistics=stats.HEADER)
        (tmp / "table.md").write_text(_markdown(summary))
        _plot(estimates, heads, tmp / "ensemble.png", f"{ds.name}: {units} dropout units, p={p:g}")
    journal.close()
    tables.show(console, table)
    for line in reading:
        console.print(line, highlight=False, markup=False)
    done_line(console, args.out, ["results.json", "table.md", "ensemble.png"])
    return 0


def _summary(estimates: list[dict], heads: list[str]) -> list[dict]:
    from droplab.lab import stats

    rows = []
    for head in heads:
        mine = [e for e in estimates if e["network"] == f"{head} head"]
        if not mine:
            continue
        for label, key in (("weight scaling", "weight_scaling"), ("exact arithmetic mean", "exact_arithmetic"),
                           ("exact geometric mean", "exact_geometric")):
            rows.append({"network": f"{head} head", "method": label,
                         "error": stats.summary([e[key]["error"] for e in mine]),
                         "nll": stats.summary([e[key]["nll"] for e in mine])})
        Ts = mine[0]["mc"]["T"]
        for t in sorted({1, 10, 50, Ts[-1]} & set(Ts)):
            k = Ts.index(t)
            rows.append({"network": f"{head} head", "method": f"MC T={t}",
                         "error": stats.summary([e["mc"]["error_mean"][k] for e in mine]),
                         "nll": stats.summary([e["mc"]["nll_mean"][k] for e in mine])})
    return rows


def _markdown(summary: list[dict]) -> str:
    from droplab.lab import stats

    lines = ["| network | method | error (%) | NLL |", "|---|---|---:|---:|"]
    for r in summary:
        lines.append(f"| {r['network']} | {r['method']} | {stats.fmt(r['error'], 100, 2)} | {stats.fmt(r['nll'], 1, 4)} |")
    return "\n".join(lines) + "\n\n" + stats.legend(summary[0]["error"]["n"] if summary else 0) + "\n"


def _reading(estimates: list[dict], heads: list[str], p: float, units: int) -> list[str]:
    from droplab.lab import stats

    out = []
    for head in heads:
        mine = [e for e in estimates if e["network"] == f"{head} head"]
        if not mine:
            continue
        name = f"{head} head"
        n = len(mine)
        ws = stats.summary([e["weight_scaling"]["error"] for e in mine])
        am = stats.summary([e["exact_arithmetic"]["error"] for e in mine])
        gm = stats.summary([e["exact_geometric"]["error"] for e in mine])
        d = max(e["ws_vs_geometric"]["max_abs_prob_diff"] for e in mine)
        out.append(f"{name}: error (%) weight scaling {stats.fmt(ws, 100, 2)}, exact arithmetic mean "
                   f"{stats.fmt(am, 100, 2)}, exact geometric mean {stats.fmt(gm, 100, 2)} over "
                   f"{mine[0]['masks']} sub-networks ({n} network(s)).")
        if d < 1e-9:
            out.append(f"  weight scaling is identical to the exact geometric mean up to rounding, as theory says for "
                       f"dropout feeding the softmax layer: max |difference| of a probability = {d:.2e}.")
        else:
            kl = max(e["ws_vs_geometric"]["mean_kl"] for e in mine)
            out.append(f"  weight scaling is an approximation of the exact geometric mean (a ReLU lies between dropout "
                       f"and softmax): max |difference| of a probability = {d:.2e}, mean KL up to {kl:.2e} nats.")
        T = mine[0]["mc"]["T"]
        matches = [e["mc_T_matching_weight_scaling_error"] for e in mine]
        if all(m is None for m in matches):
            last = stats.summary([e["mc"]["error_mean"][-1] for e in mine])
            out.append(f"  MC averaging's mean error stays above weight scaling's at every T up to {T[-1]} "
                       f"({stats.fmt(last, 100, 2)}% at T={T[-1]} against {stats.fmt(ws, 100, 2)}%).")
        else:
            shown = ", ".join("none" if m is None else str(m) for m in matches)
            out.append(f"  MC averaging's mean error over its repeats first reaches weight scaling's at T = {shown} "
                       f"(per network); its mean |MC - exact arithmetic mean| "
                       f"falls from {mine[0]['mc']['abs_diff_mean'][0]:.3g} (T=1) to "
                       f"{mine[0]['mc']['abs_diff_mean'][-1]:.3g} (T={T[-1]}), about 1/sqrt(T).")
        v = stats.verdict(stats.paired({e["seed"]: e["weight_scaling"]["error"] for e in mine},
                                       {e["seed"]: e["mc"]["error_mean"][-1] for e in mine}))
        out.append("  " + stats.sentence(v, subject=f"MC averaging (T={T[-1]})", what="the error relative to "
                                         "weight scaling", scale=100, unit=" points", digits=2) + ".")
        gaps = [e.get("relu_gap") for e in mine if e.get("relu_gap") is not None]
        if gaps:
            mc_better = v.resolved and v.direction < 0
            out.append(
                f"  why {'weight scaling errs more than MC averaging here' if mc_better else 'the ReLU head differs'}"
                f": with a ReLU between the dropout layer and the softmax, weight scaling feeds that ReLU the "
                f"masks' average input, and relu(E[z]) is not E[relu(z)]: the sub-networks' mean ReLU output "
                f"exceeds the deterministic pass's by {100 * float(np.mean(gaps)):.1f}% here (Jensen's gap, measured "
                f"over 200 masks). With only {units} dropout units at p = {p:g}, each mask changes the ReLU's inputs "
                "a lot; Srivastava et al.'s Figure 11 (weight scaling matching MC at about T = 50) used layers of "
                "1000+ units, where the inputs' dropout noise is small next to their mean and the gap shrinks.")
    return out


def _plot(estimates: list[dict], heads: list[str], path, title: str) -> None:
    from droplab.lab.plots import COLORS, subplots, tight_layout

    fig, axes = subplots(len(heads), 2, figsize=(11, 3.8 * len(heads)), squeeze=False)
    for row, head in zip(axes, heads):
        mine = [e for e in estimates if e["network"] == f"{head} head"]
        if not mine:
            continue
        T = np.asarray(mine[0]["mc"]["T"])
        for ax, metric, scale in ((row[0], "error", 100), (row[1], "nll", 1)):
            curves = np.asarray([e["mc"][f"{metric}_mean"] for e in mine]) * scale
            m = curves.mean(axis=0)
            ax.plot(T, m, "o-", ms=3, color=COLORS[0], label=f"MC average (mean over {len(mine)} network(s))")
            if len(mine) > 1:
                ax.fill_between(T, curves.min(axis=0), curves.max(axis=0), color=COLORS[0], alpha=0.2, lw=0,
                                label="range over networks")
            for (label, key), color, style in zip(
                    (("weight scaling", "weight_scaling"), ("exact arithmetic mean", "exact_arithmetic"),
                     ("exact geometric mean", "exact_geometric")), COLORS[1:], ("-", "--", ":")):
                ax.axhline(np.mean([e[key][metric] for e in mine]) * scale, color=color, ls=style, label=label)
            ax.set_xscale("log")
            ax.set_xlabel("T (MC samples)")
            ax.set_ylabel("validation error (%)" if metric == "error" else "validation NLL")
            ax.set_ylim(bottom=0)
            if metric == "error":
                ax.set_ylim(top=min(100, ax.get_ylim()[1]))
            ax.set_title(f"{head} head")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=8)
    fig.suptitle(title)
    tight_layout(fig)
    fig.savefig(path, dpi=110)
