"""The lab's one flag builder: every experiment flag defined once, with one meaning everywhere.

A command calls :func:`add` with the names of the flags it takes and the defaults where it
departs from :class:`~droplab.lab.experiment.RunConfig`'s, then :func:`resolve` after parsing
(``--quick`` defaults, deprecated spellings) and :func:`run_config` to get its config. Names:

* ``--model`` is always an architecture (``mlp``, ``cnn``, ``rnn``); a saved model file is
  ``--model-file``;
* ``--engine numpy|torch`` trains with droplab's NumPy engine or PyTorch;
* ``--backend loky|dask|ray`` and ``--address`` say where a command's independent runs execute,
  with ``--workers`` processes (default: the usable cores, the most allowed); with a cluster
  ``--address`` (or ``$DASK_SCHEDULER_ADDRESS`` / ``$RAY_ADDRESS``), ``--workers`` is the most
  runs in flight on that cluster (default: its cores; up to :data:`MAX_CLUSTER_WORKERS`);
* ``--seed`` (the first seed; run i uses seed + i) and ``--quick`` (a shortened setting; flags
  given explicitly still win) wherever randomness or run length applies.

Old spellings stay for one release as deprecated aliases: ``compare --backend numpy|torch``
(now ``--engine``) and ``uncertainty --model FILE`` (now ``--model-file``); a command that
succeeds with one prints a one-line note on stderr after its results (never on an error, which
stays one line).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from typing import Any

from droplab.errors import InvalidValueError
from droplab import _validate

__all__ = ["add", "resolve", "run_config", "deprecate", "hidden_list", "DEFAULTS", "MAX_CLUSTER_WORKERS"]

MAX_CLUSTER_WORKERS = 100_000  # runs in flight on a cluster --address: a sweep has at most that many

# the RunConfig defaults as the command line spells them (batch size 0: full batch)
DEFAULTS: dict[str, Any] = {
    "dataset": "mnist1d", "model": "mlp", "variant": "dropout", "hidden": "256,256", "activation": "relu",
    "init": "auto", "p": 0.3, "input_p": 0.0, "epochs": 150, "batch_size": 100, "optimizer": "adam",
    "lr": 1e-3, "decay": 0.0, "l2": 0.0, "first_l2": 0.0, "max_norm": 0.0, "seeds": 3, "label": "label",
    "engine": "numpy", "backend": "loky", "address": None, "checkpoint_every": 10,
}

_HELP = {
    "dataset": "a registered data set (spiral, moons, circles, digits, breast_cancer, mnist1d) or a .npz/.csv file",
    "model": "architecture: mlp; cnn (Conv-ReLU-dropout-pool-Dense on image data sets, e.g. digits); rnn (the "
             "features read as a sequence, e.g. mnist1d); --hidden and --activation apply to mlp",
    "variant": "dropout variant (mlp: dropout, classic, gaussian, alpha; cnn: dropout, dropout2d, dropblock, gaussian; "
               "rnn: dropout, locked)",
    "hidden": "hidden layer sizes, comma-separated (each 1 to 8192, at most 64 layers, at most 2^26 weights "
              "between hidden layers: 256 MiB)",
    "activation": "relu, leaky_relu, tanh, sigmoid or selu",
    "init": "weight initialisation: auto (he for ReLU, glorot for tanh/sigmoid, lecun for SELU; glorot for the "
            "output layer), he, glorot, lecun, torch, or small (normal with std 0.01: the NNFS book's "
            "0.01*randn) for every layer",
    "optimizer": "adam, adamw or sgd (momentum 0.9)",
    "label": "label column of a .csv data set",
    "engine": "train with the NumPy engine or with PyTorch (droplab.torch; same weights, masks and shuffling; "
              "mlp only)",
    "backend": "where independent runs execute: loky (local processes), dask (a distributed cluster) or ray "
               "(pip install 'dask[distributed]' or 'ray[default]'); every run's record is the same on each, "
               "timings and host aside, and an interrupted command resumes on any of them",
    "address": "a running cluster for --backend dask (scheduler: tcp://host:8786) or ray (host:6379, or "
               "ray://host:10001); default: $DASK_SCHEDULER_ADDRESS or $RAY_ADDRESS, else a local cluster of "
               "--workers processes started for the command; connect timeout 10 s, then one line and exit 2 "
               "(sweep's results.json records it without credentials)",
}

_WORKERS = ("parallel runs. loky: local processes ({cores}); dask or ray without --address: the size of the "
            "local cluster started for the command ({cores}); with --address: the most runs in flight on that "
            "cluster at once (1 to {most}; default: the cluster's cores), which does not resize the cluster")


def _bounded(key: str, what: str) -> tuple[Any, str]:
    return _validate.flag_type(key), f"{what} ({_validate.bounds_help(key)})"


def _spec(name: str, grid: bool) -> tuple[dict[str, Any], str]:
    """argparse keywords (without default) and the help text of flag ``name``."""
    if grid and name in ("p", "input_p", "epochs", "batch_size", "lr", "decay", "l2", "first_l2", "max_norm",
                         "dataset", "variant", "activation", "optimizer", "init", "model"):
        return {}, ""  # the sweep defines its grid flags itself (comma-separated lists)
    bounded = {
        "p": "drop probability of the dropout layers", "input_p": "drop probability on the inputs, where p > 0",
        "epochs": "passes over the training data", "batch_size": "mini-batch size", "lr": "learning rate",
        "decay": "learning-rate decay: lr / (1 + decay * step)", "l2": "L2 penalty on every weight matrix",
        "first_l2": "L2 penalty on the first layer's weights and biases (the NNFS book's 5e-4)",
        "max_norm": "max-norm constraint on each unit's incoming weights after every step",
        "seeds": "number of seeds (independent runs) per arm", "workers": "parallel runs: processes, or cluster "
        "tasks", "checkpoint_every": "epochs between checkpoints of a run in progress (NumPy engine)",
    }
    if name in bounded:
        kind, text = _bounded(name, bounded[name])
        return {"type": kind}, text
    if name == "hidden":
        return {"type": _validate.hidden_flag}, _HELP["hidden"]
    if name == "model":
        return {"metavar": "ARCH"}, _HELP["model"]
    if name == "backend":
        return {"metavar": "{loky,dask,ray}"}, _HELP["backend"]
    if name == "engine":
        return {"choices": ("numpy", "torch")}, _HELP["engine"]
    return {}, _HELP.get(name, name)


def add(parser: argparse.ArgumentParser, names: Iterable[str], *, defaults: Mapping[str, Any] | None = None,
        quick: Mapping[str, Any] | None = None, grid: bool = False) -> None:
    """Add the experiment flags ``names`` to ``parser``; ``defaults`` override :data:`DEFAULTS`,
    ``quick`` are the defaults under ``--quick`` (each shown in --help)."""
    names = list(names)
    defaults = {**DEFAULTS, **(defaults or {})}
    quick = dict(quick or {})
    taken = list(parser.get_default("_flag_names") or []) + names
    parser.set_defaults(_flag_defaults={k: v for k, v in defaults.items() if k in taken}, _quick_defaults=quick,
                        _flag_names=taken)
    for name in names:
        if name == "quick":
            shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
            parser.add_argument("--quick", action="store_true",
                                help="a shortened setting" + (f" ({shown}; flags given explicitly win)" if shown
                                                              else ""))
            continue
        if name == "resume":
            parser.add_argument("--resume", action="store_true",
                                help="continue an interrupted run, refusing one made with other flags (a rerun "
                                     "with the same flags resumes anyway: finished runs are kept in "
                                     "--out/.droplab-work and an interrupted one resumes from its checkpoint)")
            continue
        if name == "workers":
            cores = f"1 to the usable cores, {_validate.usable_cores()} here, the default"
            parser.add_argument("--workers", type=_workers_flag, default=argparse.SUPPRESS,
                                help=_WORKERS.format(cores=cores, most=MAX_CLUSTER_WORKERS))
            continue
        kw, text = _spec(name, grid)
        if not text:
            continue
        default = defaults.get(name)
        shown = "full batch" if name == "batch_size" and default == 0 else default
        extra = f"; --quick: {quick[name]}" if name in quick else ""
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                            help=f"{text} (default: {shown}{extra})", **kw)


def _workers_flag(text: str) -> int:
    """``--workers`` as typed: an integer in [1, MAX_CLUSTER_WORKERS]; the usable-cores cap
    applies unless a cluster address is given, so it is checked by :func:`resolve`."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_CLUSTER_WORKERS:
        raise argparse.ArgumentTypeError(_validate.flag_error(
            "--workers", f"an integer in [1, {_validate.usable_cores()}] (the usable cores), or up to "
            f"{MAX_CLUSTER_WORKERS} runs in flight with a cluster --address", text))
    return value


_workers_flag.__name__ = "--workers"


def _resolve_workers(args: argparse.Namespace, where: str) -> None:
    """``--backend``, ``--address`` (or its environment variable) and ``--workers``, checked together."""
    from droplab.lab import runner

    backend = getattr(args, "backend", None)
    if backend is not None:
        args.backend = backend = runner.check_backend(backend, where)
    typed = getattr(args, "address", None)
    if typed is not None and backend == "loky":
        raise InvalidValueError(_validate.message(where, "address", "used with --backend dask or ray",
                                           runner.public_address(typed),
                                           "loky runs on this machine; add --backend dask or --backend ray."))
    # the environment's address is used, never copied into args (commands write args.address to results)
    address = runner.cluster_address(backend or "loky", typed) if hasattr(args, "address") else None
    if address:
        runner.check_address(backend, address, where)  # before anything is written
        if getattr(args, "workers", None) is None:
            args.workers = None  # the cluster's cores, known once connected
        return  # a number: runs in flight on the cluster, not capped by this machine's cores
    if getattr(args, "workers", None) is None:
        args.workers = _validate.usable_cores()
    elif not _validate.FLAG_BOUNDS["workers"].accepts(args.workers):
        raise InvalidValueError(_validate.flag_error("--workers", _validate.FLAG_BOUNDS["workers"].allowed()
                                              + " without a cluster --address", args.workers))


def deprecate(args: argparse.Namespace, text: str) -> None:
    """Record a one-line deprecation note, printed on stderr when the command succeeds."""
    notes = getattr(args, "_deprecated", None)
    if notes is None:
        notes = []
        args._deprecated = notes
    notes.append(text)


def resolve(args: argparse.Namespace, where: str, *, engine: bool = False, model_file: bool = False
            ) -> argparse.Namespace:
    """Fill every flag not given: its ``--quick`` default under ``--quick``, else its default;
    map deprecated spellings to the new ones (with a note)."""
    defaults = getattr(args, "_flag_defaults", {})
    quick = getattr(args, "_quick_defaults", {}) if getattr(args, "quick", False) else {}
    quick = {k: v for k, v in quick.items() if k in defaults}
    backend = getattr(args, "backend", None)
    if engine and backend in ("numpy", "torch"):  # compare --backend numpy|torch, before --engine
        if getattr(args, "engine", None) is None:
            args.engine = backend
        deprecate(args, f"--backend {backend} is deprecated (it names the engine): use --engine {backend}; "
                        "--backend now says where runs execute (loky, dask or ray)")
        del args.backend
    if model_file:
        model = getattr(args, "model", None)
        from droplab.lab import models

        if model is not None and model not in models.MODELS and (
                os.sep in model or "." in model or os.path.exists(model)):
            if getattr(args, "model_file", None) is None:
                args.model_file = model
            deprecate(args, f"--model {model} is deprecated for a model file: use --model-file {model}; "
                            "--model names an architecture (mlp, cnn, rnn)")
            del args.model
    for name, value in {**defaults, **quick}.items():
        if not hasattr(args, name):  # flags default to SUPPRESS: absent means not typed
            setattr(args, name, quick.get(name, value))
    _resolve_workers(args, where)
    if getattr(args, "engine", None) == "torch":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            from droplab._install import TORCH_HINT

            raise InvalidValueError(_validate.message(where, "engine", "'numpy' here (PyTorch is not installed)", "torch",
                                               f"To use it, {TORCH_HINT}."))
    return args


def hidden_list(values: str | Iterable[str]) -> list[str]:
    """Architectures from ``--hidden`` values: repeated flags, or one value separated by ``/``
    (or ``;``, accepted but a shell metacharacter): ``["64,64", "128"]``."""
    items = [values] if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        out += [t.strip() for t in str(item).replace(";", "/").split("/")]
    return out


def run_config(args: argparse.Namespace, where: str, **fixed: Any):
    """The :class:`~droplab.lab.experiment.RunConfig` of a parsed command line (validated)."""
    from droplab.lab import experiment, models

    values = {
        "dataset": args.dataset, "label": getattr(args, "label", "label"), "model": getattr(args, "model", "mlp"),
        "hidden": models.parse_hidden(getattr(args, "hidden", DEFAULTS["hidden"])),
        "activation": getattr(args, "activation", "relu"), "variant": getattr(args, "variant", "dropout"),
        "input_p": getattr(args, "input_p", 0.0), "init": getattr(args, "init", "auto"),
        "epochs": args.epochs, "batch_size": None if args.batch_size == 0 else args.batch_size,
        "optimizer": getattr(args, "optimizer", "adam"), "lr": args.lr, "decay": getattr(args, "decay", 0.0),
        "l2": getattr(args, "l2", 0.0), "first_l2": getattr(args, "first_l2", 0.0),
        "max_norm": getattr(args, "max_norm", 0.0) or None, "engine": getattr(args, "engine", "numpy"),
    }
    values.update(fixed)
    _validate.one_of(where, "model", values["model"], models.MODELS)
    cfg = experiment.RunConfig(**values)
    if cfg.model in models.MODELS:  # the CLI offers the model's registered variants only
        _validate.one_of(where, "variant", cfg.variant, models.MODELS[cfg.model])
    return cfg.validate(where)
