"""``droplab sweep``: a grid of p (and other knobs) x seeds, in parallel, resumable.

The grid is the product of the values given for each knob (``p``, ``dataset``, ``hidden``,
``variant``, ``activation``, ``optimizer``, ``lr``, ``l2``, ``epochs``, ``batch_size``,
``input_p``, ``model``, ``init``, ``decay``, ``first_l2``, ``max_norm``), as flags
(``--p 0,0.1,0.3 --hidden 64 --hidden 256,256 --lr 1e-3,1e-2``; architectures are given by
repeating ``--hidden`` or separated by ``/``: ``--hidden 64/256,256``; ``;`` is accepted too
but needs quoting in a shell) or in a TOML file (``--config grid.toml``; flags given on the
command line override the file), times ``--seeds`` seeds. ``p`` is always the drop
probability (not the keep probability). Every run is a task of the lab's one runner
(:mod:`droplab.lab.runner`), so a run's record has the keys of a ``compare`` record (``p``,
``seed``, ``metrics``, ``history``) plus the knobs of its grid point and a ``key`` that names
the run.

Runs execute where ``--backend`` says: local processes (loky) with ``--workers`` (default: the
usable cores), or a dask or ray cluster when those packages are installed: a local one of
``--workers`` processes, or the one at ``--address`` (``$DASK_SCHEDULER_ADDRESS``,
``$RAY_ADDRESS``), where ``--workers`` is the most runs in flight. Each finished run comes back
to this process and is appended to ``runs.jsonl`` as it arrives, whatever the backend, so a
killed sweep resumes on any of them; the workers get the data set's arrays, not its path.
``results.json`` names the backend, the address (credentials stripped) and the hosts the runs
ran on; each record names its ``host``.
Seed ``s`` of every grid point starts from the same initial weights, so points are compared
on common random numbers, and a record does not depend on the worker or the order it ran in.

Results folder layout. Unlike the other commands' folders, which are written whole or not
at all (:func:`droplab.lab._results.results_dir`), a sweep's folder is written as it goes,
by design, so that it can be resumed:

- ``sweep.json`` (written atomically before the first run): the grid, the seeds and their
  hash. Rerunning with the same grid and seeds resumes; a different grid is rejected with a
  one-line error unless ``--force`` (which starts over) or another ``--out`` is given.
- ``runs.jsonl``: one JSON record per finished run, appended by the parent process as
  results arrive, each line with a single ``write`` on an ``O_APPEND`` descriptor followed
  by ``fsync``. A process killed at any instant leaves at most one torn last line; on
  resume it is detected (no newline, or not JSON), dropped, and the file is rewritten
  atomically with the intact records, each once.
- A run whose training loss becomes non-finite (too large a learning rate) does not stop the
  sweep: its record holds ``error`` and no metrics, and the summary counts it in ``diverged``.
- ``results.json`` (``command``, ``config``, ``versions``, ``runs``, ``summary`` as for
  ``compare``: mean ± 95% CI over seeds, :mod:`droplab.lab.stats`) and the plots
  ``sweep_p.png`` (validation accuracy and loss against p, error bars = 95% CI, one line per
  combination of the other knobs) and ``gap.png`` (train - validation accuracy against p),
  each written atomically once every run has finished.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from droplab._files import atomic_open
from droplab import _validate
from droplab.errors import FileError, InvalidTypeError, InvalidValueError

__all__ = ["KNOBS", "DEFAULTS", "expand", "config_hash", "load_runs", "append_record", "summarize_points",
           "run_config", "HELP"]

HELP = "a grid of p (and other knobs) x seeds, in parallel, resumable"

WHERE = "sweep"
FORMAT = 2  # version of the run-key / config-hash recipe (2: model, init, decay, first_l2, max_norm knobs)

# knob -> default values, in the order grid points are enumerated (p varies fastest but one)
DEFAULTS: dict[str, list[Any]] = {
    "dataset": ["mnist1d"],
    "hidden": [[256, 256]],
    "variant": ["dropout"],
    "activation": ["relu"],
    "optimizer": ["adam"],
    "lr": [1e-3],
    "l2": [0.0],
    "epochs": [150],
    "batch_size": [100],
    "input_p": [0.0],
    "model": ["mlp"],
    "init": ["auto"],
    "decay": [0.0],
    "first_l2": [0.0],
    "max_norm": [0.0],
    "p": [0.0, 0.1, 0.2, 0.3, 0.5],
}
KNOBS = tuple(DEFAULTS)
QUICK = {"epochs": [30]}
_FLOATS = ("lr", "l2", "input_p", "p", "decay", "first_l2", "max_norm")
_INTS = ("epochs", "batch_size")
_STRINGS = ("dataset", "variant", "activation", "optimizer", "model", "init")
_TOML_EXTRA = ("seeds", "label")
METRICS = ("train_accuracy", "val_accuracy", "gap", "train_loss", "val_loss", "seconds_per_epoch")


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab.lab import flags

    def d(knob: str) -> str:
        vals = DEFAULTS[knob]
        if knob == "hidden":
            return "/".join(",".join(map(str, h)) for h in vals)
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals)

    g = parser.add_argument_group("grid (comma-separated values; every combination is run)")
    b = _validate.bounds_help
    g.add_argument("--p", default=argparse.SUPPRESS, help=f"drop probabilities, each {b('p')} (default {d('p')})")
    g.add_argument("--dataset", default=argparse.SUPPRESS,
                   help=f"registered data sets or .npz/.csv files (default {d('dataset')})")
    g.add_argument("--hidden", action="append", default=argparse.SUPPRESS,
                   help=f"hidden layer sizes of one architecture, comma-separated; repeat the flag (or separate "
                        f"architectures with '/') for several (each size 1 to {_validate.MAX_WIDTH}, at most "
                        f"{_validate.MAX_DEPTH} layers; default {d('hidden')})")
    g.add_argument("--model", default=argparse.SUPPRESS, help=f"architectures: mlp, cnn, rnn (default {d('model')})")
    g.add_argument("--variant", default=argparse.SUPPRESS, help=f"dropout variants, e.g. dropout,classic (default {d('variant')})")
    g.add_argument("--activation", default=argparse.SUPPRESS, help=f"relu, leaky_relu, tanh, sigmoid, selu "
                                                      f"(default {d('activation')})")
    g.add_argument("--init", default=argparse.SUPPRESS, help=f"weight initialisations: auto, he, glorot, lecun, torch, "
                                                f"small (default {d('init')})")
    g.add_argument("--optimizer", default=argparse.SUPPRESS, help=f"adam, adamw, sgd (default {d('optimizer')})")
    g.add_argument("--lr", default=argparse.SUPPRESS, help=f"learning rates, each {b('lr')} (default {d('lr')})")
    g.add_argument("--decay", default=argparse.SUPPRESS,
                   help=f"learning-rate decays, lr / (1 + decay * step), each {b('decay')} (default {d('decay')})")
    g.add_argument("--l2", default=argparse.SUPPRESS,
                   help=f"L2 penalties on every weight matrix, each {b('l2')} (default {d('l2')})")
    g.add_argument("--first-l2", dest="first_l2", default=argparse.SUPPRESS,
                   help=f"L2 penalties on the first layer's weights and biases, each {b('first_l2')} "
                        f"(default {d('first_l2')})")
    g.add_argument("--max-norm", dest="max_norm", default=argparse.SUPPRESS,
                   help=f"max-norm constraints (0: off), each {b('max_norm')} (default {d('max_norm')})")
    g.add_argument("--epochs", default=argparse.SUPPRESS,
                   help=f"passes over the training data, each {b('epochs')} (default {d('epochs')}; --quick: 30)")
    g.add_argument("--batch-size", dest="batch_size", default=argparse.SUPPRESS,
                   help=f"mini-batch sizes, each {b('batch_size')} (default {d('batch_size')})")
    g.add_argument("--input-p", dest="input_p", default=argparse.SUPPRESS,
                   help=f"drop probabilities on the inputs, used where p > 0, each {b('input_p')} "
                        f"(default {d('input_p')})")
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="TOML file with the grid (keys as the flags, with '_'; lists or single values; "
                             "also 'seeds'); flags override it")
    parser.add_argument("--seeds", type=_validate.flag_type("seeds"), default=argparse.SUPPRESS,
                        help=f"seeds per grid point, {b('seeds')} (default 3; grid points x seeds at most "
                             f"{_validate.MAX_SWEEP_RUNS})")
    parser.add_argument("--label", default=argparse.SUPPRESS, help="label column of .csv data sets (default 'label')")
    flags.add(parser, ["workers", "backend", "address", "checkpoint_every", "quick"], quick={"epochs": 30})


# ---------------------------------------------------------------------------------------------
# the grid


def _canon(knob: str, value: Any, where: str) -> Any:
    """One knob value in canonical form (floats as float, hidden as a list of ints), validated."""
    from droplab.lab import experiment, models

    if knob == "hidden":
        if isinstance(value, str) or (isinstance(value, (list, tuple))):
            return list(_validate.hidden_sizes(where, "hidden", models.parse_hidden(value)))
        raise InvalidTypeError(_validate.message(where, "hidden", "a list of layer sizes like [256, 256]", value))
    if knob in _FLOATS:
        if knob in ("p", "input_p"):
            return _validate.within(where, knob, _validate.probability(where, knob, value))
        if knob == "lr":
            return _validate.within(where, knob, _validate.positive_float(where, knob, value))
        return _validate.within(where, knob, _validate.nonnegative_float(where, knob, value))  # l2, decay, ...
    if knob == "epochs":
        return _validate.within(where, knob, _validate.positive_int(where, knob, value))
    if knob == "batch_size":
        return _validate.within(where, knob, _validate.nonnegative_int(where, knob, value))
    if not isinstance(value, str):
        raise InvalidTypeError(_validate.message(where, knob, "a string", value))
    if knob == "variant":
        return _validate.one_of(where, knob, value, list(dict.fromkeys(v for reg in models.MODELS.values()
                                                                       for v in reg)))
    if knob == "model":
        return _validate.one_of(where, knob, value, models.MODELS)
    if knob == "init":
        return _validate.one_of(where, knob, value, models.INIT_CHOICES)
    if knob == "activation":
        return _validate.one_of(where, knob, value, models.ACTIVATIONS)
    if knob == "optimizer":
        return _validate.one_of(where, knob, value, experiment.OPTIMIZERS)
    return value  # dataset: checked by loading it


def _from_flag(knob: str, text: Any) -> list[Any]:
    """Parse one flag's text: comma-separated values (architectures: repeated --hidden, or '/' or ';')."""
    from droplab.lab import flags

    flag = "--" + knob.replace("_", "-")
    parts = flags.hidden_list(text) if knob == "hidden" else [t.strip() for t in str(text).split(",")]
    if knob != "hidden":
        parts = [t for t in parts if t]
    if not parts:
        raise InvalidValueError(_validate.message(WHERE, knob, "at least one value", text))
    out = []
    for t in parts:
        if knob in _FLOATS or knob in _INTS:
            kind, example = (float, "0,0.1,0.3") if knob in _FLOATS else (int, "10,20")
            try:
                v = kind(t)
            except ValueError:
                raise InvalidValueError(_validate.message(WHERE, knob, f"comma-separated numbers like {example} ({flag})",
                                                   text)) from None
            out.append(v)
        else:
            out.append(t)
    return out


def _from_toml(knob: str, value: Any) -> list[Any]:
    if knob == "hidden":
        if isinstance(value, str):
            from droplab.lab import flags

            return flags.hidden_list(value)
        if isinstance(value, list) and value and all(isinstance(v, (list, str)) for v in value):
            return list(value)  # alternatives
        return [value]  # one architecture, e.g. [256, 256]
    return list(value) if isinstance(value, list) else [value]


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a grid file: ``{knob: value or list}`` plus ``seeds`` and ``label``."""
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise InvalidValueError(_validate.message(WHERE, "config", "readable with tomllib (Python >= 3.11)", str(path),
                                               "On Python 3.10, pip install tomli or give the grid as flags.")
                             ) from None
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidValueError(_validate.message(WHERE, "config", "an existing TOML file", str(path))) from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidValueError(_validate.message(WHERE, "config", "a valid TOML file", str(path), f"{exc}.")) from None
    allowed = (*KNOBS, *_TOML_EXTRA)
    out = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(allowed)}."
            raise InvalidValueError(_validate.message(f"{WHERE} ({path.name})", "key", "a knob of the grid", key, hint))
        out[name] = value
    return out


def expand(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as point dicts in enumeration order.

    Example:
        >>> pts = expand({"p": [0.0, 0.5], "lr": [0.1, 0.01]})
        >>> len(pts), pts[0], pts[-1]
        (4, {'lr': 0.1, 'p': 0.0}, {'lr': 0.01, 'p': 0.5})
    """
    names = [k for k in KNOBS if k in grid]
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[k] for k in names))]


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def run_key(point: dict[str, Any], seed: int) -> str:
    """The name of one run: a hash of its grid point and seed (stable across processes)."""
    return _digest({"format": FORMAT, "point": point, "seed": seed})[:16]


def config_hash(grid: dict[str, list[Any]], seeds: Sequence[int], label: str) -> str:
    """The hash of what a sweep computes (not how: workers and backend are left out).

    Example:
        >>> a = config_hash({"p": [0.0, 0.5]}, [0, 1], "label")
        >>> a == config_hash({"p": [0.0, 0.5]}, [0, 1], "label"), a == config_hash({"p": [0.5]}, [0, 1], "label")
        (True, False)
    """
    return _digest({"format": FORMAT, "grid": grid, "seeds": list(seeds), "label": label})[:16]


def build_grid(args: argparse.Namespace) -> tuple[dict[str, list[Any]], int, str]:
    """Defaults, then the TOML file, then the flags: the canonical grid, seeds and CSV label."""
    config, n_seeds, label = (getattr(args, k, None) for k in ("config", "seeds", "label"))
    file = read_toml(config) if config else {}
    where_file = f"{WHERE} ({Path(config).name})" if config else WHERE
    grid: dict[str, list[Any]] = {}
    for knob in KNOBS:
        flag = getattr(args, knob, None)
        if flag is None and knob in QUICK and getattr(args, "quick", False) and knob not in file:
            flag = ",".join(map(str, QUICK[knob]))
        if flag is not None:
            raw, where = _from_flag(knob, flag), WHERE
        elif knob in file:
            raw, where = _from_toml(knob, file[knob]), where_file
        else:
            raw, where = DEFAULTS[knob], WHERE
        if not raw:
            raise InvalidValueError(_validate.message(where, knob, "at least one value", raw))
        values = []
        for v in raw:
            c = _canon(knob, v, where)
            if c not in values:  # a repeated value would only run the same runs twice
                values.append(c)
        grid[knob] = values
    seeds = n_seeds if n_seeds is not None else file.get("seeds", 3)
    seeds = _validate.positive_int(WHERE if n_seeds is not None else where_file, "seeds", seeds)
    _validate.within(WHERE if n_seeds is not None else where_file, "seeds", seeds)
    runs = math.prod(len(v) for v in grid.values()) * seeds
    if runs > _validate.MAX_SWEEP_RUNS:
        raise InvalidValueError(_validate.message(
            WHERE, "runs", f"at most {_validate.MAX_SWEEP_RUNS} (grid points x seeds)", runs,
            "Split the grid into several sweeps."))
    label = label if label is not None else file.get("label", "label")
    if not isinstance(label, str):
        raise InvalidTypeError(_validate.message(where_file, "label", "a column name (string)", label))
    return grid, seeds, label


# ---------------------------------------------------------------------------------------------
# one run (executed in a worker process)

def run_config(point: dict[str, Any], label: str = "label"):
    """The :class:`~droplab.lab.experiment.RunConfig` of a grid point."""
    from droplab.lab import experiment

    return experiment.RunConfig(
        dataset=point.get("dataset", "mnist1d"), label=label, model=point.get("model", "mlp"),
        hidden=tuple(point["hidden"]), activation=point["activation"], variant=point["variant"],
        input_p=point["input_p"], init=point.get("init", "auto"), epochs=point["epochs"],
        batch_size=None if point["batch_size"] == 0 else point["batch_size"], optimizer=point["optimizer"],
        lr=point["lr"], decay=point.get("decay", 0.0), l2=point["l2"], first_l2=point.get("first_l2", 0.0),
        max_norm=point.get("max_norm", 0.0) or None)


# runs.jsonl: atomic appends and torn-line recovery live in the runner (every command's journal)
from droplab.lab.runner import append_record, load_runs  # noqa: E402


_OUTPUTS = ("sweep.json", "runs.jsonl", "results.json", "sweep_p.png", "gap.png")


def prepare_out(out: Path, config: dict[str, Any], force: bool) -> None:
    """Check the folder ``out`` (locked) is empty or holds this sweep, and write ``sweep.json``.

    A sweep of another grid is refused unless ``force``, which removes that sweep's own files
    (and only those) to start over. Other files are never touched.
    """
    from droplab.lab._results import _others, owner, write_json, write_manifest

    meta = out / "sweep.json"
    if meta.exists():
        try:
            old = json.loads(meta.read_text())
            old_hash = old["hash"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            old_hash = None
        if old_hash != config["hash"]:
            if not force:
                raise InvalidValueError(_validate.message(
                    WHERE, "out", "a new folder or one holding a sweep of the same grid and seeds", str(out),
                    f"It holds a sweep of another grid (config hash {old_hash} != {config['hash']}); "
                    "rerun with --force to start over there (only the sweep's own files are replaced), "
                    "or pick another --out."))
            for name in _OUTPUTS:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (out / name).unlink()
    elif not force and owner(out) not in (None, "sweep"):
        raise InvalidValueError(_validate.message(
            WHERE, "out", "an empty folder or a sweep's folder", str(out),
            f"It holds {owner(out)} results; rerun with --force to add the sweep's files there (nothing of "
            "yours is deleted), or pick another --out."))
    elif not force and _others(out):
        others = _others(out)
        raise InvalidValueError(_validate.message(
            WHERE, "out", "an empty folder or a sweep's folder", str(out),
            f"It holds {', '.join(others[:3])}{'...' if len(others) > 3 else ''}; rerun with --force to add the "
            "sweep's files there (nothing of yours is deleted), or pick another --out."))
    write_manifest(out, "sweep", ["sweep.json", "runs.jsonl"])
    if not meta.exists():
        write_json(meta, config)


# ---------------------------------------------------------------------------------------------
# statistics (the lab's one helper: droplab.lab.stats, through droplab.lab.readings)


def summarize_points(runs: Sequence[dict], points: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per grid point with runs: its knobs, seeds, diverged runs and the summary
    (mean, n, std, min, max, 95% CI half-width when n >= 3) of each metric.

    Runs that diverged (a record with ``error``) are counted in ``diverged`` and left out of the
    statistics; a point whose runs all diverged has None for each metric.
    """
    from droplab.lab import readings

    rows = []
    for point in points:
        mine = [r for r in runs if all(r.get(k) == v for k, v in point.items())]
        if mine:
            s = readings.summarize(mine, METRICS)
            rows.append({**point, "seeds": sorted(r["seed"] for r in mine), "diverged": s.pop("diverged"),
                         **{m: (v if v["n"] else None) for m, v in s.items()}})
    return rows


# ---------------------------------------------------------------------------------------------
# the command


def run(args: argparse.Namespace) -> int:
    from droplab.lab import _results, flags, runner

    # everything is validated before anything is written
    flags.resolve(args, WHERE)
    grid, n_seeds, label = build_grid(args)
    seed = _validate.nonnegative_int(WHERE, "seed", args.seed)
    workers = args.workers  # bounded by flags.resolve: usable cores, or runs in flight on a cluster (None: its cores)
    seeds = [seed + i for i in range(n_seeds)]
    points = expand(grid)
    for point in points:
        run_config(point, label).validate(WHERE)
    for name in grid["dataset"]:
        runner.dataset(run_config({**points[0], "dataset": name}, label))  # bad names fail here
    tasks = [runner.Task(run_key(pt, s), run_config(pt, label), pt["p"], s, dict(pt)) for pt in points
             for s in seeds]
    config = {"command": "sweep", "hash": config_hash(grid, seeds, label), "grid": grid, "seeds": seeds,
              "seed": seed, "label": label, "runs": len(tasks)}
    force = _results.force_flag(args)
    out = _results.check_out(args.out, WHERE, force=force)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _results.file_error(WHERE, out, exc) from None
    try:
        with _results.lock(out, WHERE):
            return _sweep(args, out, config, tasks, points, grid, seeds, workers, force)
    except OSError as exc:
        if isinstance(exc, FileError) and "--out" in str(exc):
            raise
        raise _results.file_error(WHERE, out, exc) from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                if not os.listdir(out):
                    out.rmdir()


def _sweep(args, out, config, tasks, points, grid, seeds, workers, force) -> int:
    """The sweep itself, in the locked folder ``out``: resume what is there, run the rest, write the results."""
    from rich.console import Console

    from droplab.lab import _results, runner, stats, tables
    from droplab.lab._results import versions, write_json

    _results.check_out(out, WHERE, force=force)  # again, now that no other command can change it
    _results.remove_stale(out)
    prepare_out(out, config, force)
    console = Console(quiet=args.quiet)
    journal = runner.Journal(out / "runs.jsonl", out / "sweep.json", out / _results.WORK, config["hash"], WHERE)
    ran = runner.execute(tasks, workers=workers, backend_name=args.backend, address=args.address, journal=journal,
                         console=console, quiet=args.quiet, description="sweep",
                         checkpoint_every=args.checkpoint_every, where=WHERE)
    runs = ran.records
    hosts = sorted({r["host"] for r in runs if r.get("host")})
    summary = summarize_points(runs, points)
    table = _table(summary, grid, len(seeds))
    reading = _reading(runs, summary, grid)
    results = {"command": "sweep",
               "config": {k: v for k, v in config.items() if k != "command"} | {
                   "workers": workers, "backend": args.backend,
                   "address": runner.public_address(runner.cluster_address(args.backend, args.address)),
                   "hosts": hosts},
               "versions": versions(), "runs": runs, "summary": summary, "tables": [table], "reading": reading,
               "statistics": stats.HEADER, "best": best_points(summary, grid)}
    write_json(out / "results.json", results)
    plot_sweep(summary, grid, out)
    _results.write_manifest(out, "sweep", _OUTPUTS)
    journal.close()  # the checkpoints; runs.jsonl stays: it is the sweep's own record
    tables.show(console, table)
    for line in reading:
        console.print(f"- {line}", highlight=False, markup=False)
    _results.done_line(console, out, ["runs.jsonl", "results.json", "sweep_p.png", "gap.png"])
    return 0


def _varying(grid: dict[str, list[Any]], skip: Iterable[str] = ("p",)) -> list[str]:
    return [k for k in KNOBS if len(grid.get(k, ())) > 1 and k not in skip]


def _fmt(knob: str, value: Any) -> str:
    if knob == "hidden":
        return ",".join(map(str, value)) or "none"
    if knob == "batch_size" and value == 0:
        return "full"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _line_label(row: dict, keys: Sequence[str]) -> str:
    return " ".join(f"{k}={_fmt(k, row[k])}" for k in keys) or "all"


def best_points(summary: Sequence[dict], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """For each combination of the other knobs: the p with the highest mean validation accuracy."""
    keys = _varying(grid)
    groups: dict[str, list[dict]] = {}
    for row in summary:
        if row["val_accuracy"] is not None:
            groups.setdefault(_line_label(row, keys), []).append(row)
    best = []
    for name, rows in groups.items():
        top = max(rows, key=lambda r: r["val_accuracy"]["mean"])
        base = next((r for r in rows if r["p"] == 0.0), None)
        best.append({"line": name, **{k: top[k] for k in keys}, "best_p": top["p"], "val_accuracy": top["val_accuracy"],
                     "p0_val_accuracy": base["val_accuracy"] if base else None})
    return best


def _save_fig(fig, path: Path) -> None:
    with atomic_open(path) as f:
        fig.savefig(f, dpi=110, format="png")


def plot_sweep(summary: Sequence[dict], grid: dict[str, list[Any]], out: Path) -> None:
    """``sweep_p.png`` (val accuracy and loss vs p) and ``gap.png`` (train - val accuracy vs p)."""
    from droplab.lab.plots import COLORS, clip, errors, subplots

    keys = _varying(grid)
    lines: dict[str, list[dict]] = {}
    for row in summary:
        if row["val_accuracy"] is not None:  # not every run of the point diverged
            lines.setdefault(_line_label(row, keys), []).append(row)

    def draw(ax, metric: str, mult: float, ylabel: str, kind: str) -> None:
        span = max(grid["p"]) - min(grid["p"]) or 1.0
        for i, (name, rows) in enumerate(lines.items()):
            rows = sorted(rows, key=lambda r: r["p"])
            dodge = (i - (len(lines) - 1) / 2) * 0.008 * span  # error bars of lines side by side, not on top
            x = [r["p"] + dodge for r in rows]
            bars = [errors(r[metric], mult) for r in rows]
            ax.errorbar(x, [b[0] for b in bars], yerr=[[b[1] for b in bars], [b[2] for b in bars]], marker="o",
                        ms=4, capsize=3, lw=1.5, color=COLORS[i % len(COLORS)],
                        ls=("-", "--", ":", "-.")[(i // len(COLORS)) % 4], label=name)
        ax.set_xlabel("p (drop probability)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        clip(ax, kind)
        if len(lines) > 1:
            ax.legend(fontsize=7)

    n = min((r["val_accuracy"]["n"] for rows in lines.values() for r in rows), default=0)
    bars = "95% CI (Student t)" if n >= 3 else "range of the values (n < 3: not an interval)"
    fig, axes = subplots(1, 2, figsize=(11, 4))
    draw(axes[0], "val_accuracy", 100, "validation accuracy (%)", "accuracy")
    draw(axes[1], "val_loss", 1, "validation loss", "loss")
    fig.suptitle(f"sweep: mean and {bars} over {n} seed(s)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.22)  # tight_layout costs 0.3 s
    _save_fig(fig, out / "sweep_p.png")

    fig, ax = subplots(figsize=(6, 4))
    draw(ax, "gap", 100, "train - validation accuracy (points)", "gap")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title(f"generalisation gap, mean and {bars.split(' (')[0]} over {n} seed(s)", fontsize=10)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    _save_fig(fig, out / "gap.png")


def _table(summary, grid, n_seeds) -> dict:
    from droplab.lab import stats, tables

    keys = _varying(grid) + ["p"]
    cols = [("val acc (%)", "val_accuracy", 100, 1), ("train acc (%)", "train_accuracy", 100, 1),
            ("gap (points)", "gap", 100, 1), ("val loss", "val_loss", 1, 3), ("ms/epoch", "seconds_per_epoch", 1000, 1)]
    diverged = any(row["diverged"] for row in summary)
    rows = []
    for row in summary:
        cells = [stats.fmt(row[key], mult, digits) for _, key, mult, digits in cols]
        if diverged:
            cells.append(f"{row['diverged']}/{len(row['seeds'])}")
        rows.append([_fmt(k, row[k]) for k in keys] + cells)
    ns = [row[k]["n"] for row in summary for _, k, _, _ in cols if row[k]]
    return tables.table(f"droplab sweep: {n_seeds} seed(s) per point", [*keys, *(c[0] for c in cols),
                                                                         *(["diverged"] if diverged else [])],
                        rows, note=stats.legend(ns or [0]), left=len(keys),
                        drop=("ms/epoch", "train acc (%)", "val loss", "gap (points)"))


def _reading(runs, summary, grid) -> list[str]:
    """Per line of the grid (a combination of the other knobs): the p with the highest mean
    validation accuracy, and what the one rule says about it against p = 0."""
    from droplab.lab import readings, stats

    out = []
    keys = _varying(grid)
    lines: dict[str, list[dict]] = {}
    for row in summary:
        if row["val_accuracy"] is not None:
            lines.setdefault(_line_label(row, keys), []).append(row)
    for name, rows in lines.items():
        top = max(rows, key=lambda r: r["val_accuracy"]["mean"])
        where = f" for {name}" if keys else ""
        text = (f"highest mean validation accuracy{where}: p = {top['p']:g}, "
                f"{stats.fmt(top['val_accuracy'], 100)}% (n = {top['val_accuracy']['n']})")
        base = next((r for r in rows if r["p"] == 0.0), None)
        if base is not None and base is not top:
            match = {k: top[k] for k in KNOBS if k in top and k != "p"}
            text += "; " + readings.paired_sentence(runs, {**match, "p": top["p"]}, {**match, "p": 0.0},
                                                    subject=f"p = {top['p']:g} against p = 0")
        elif base is top and len(rows) > 1:
            text += "; no p > 0 had a higher mean than no dropout"
        out.append(text + ".")
    return out
