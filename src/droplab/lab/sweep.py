"""``droplab sweep``: a grid of p (and other knobs) x seeds, in parallel, resumable.

The grid is the product of the values given for each knob (``p``, ``dataset``, ``hidden``,
``variant``, ``activation``, ``optimizer``, ``lr``, ``l2``, ``epochs``, ``batch_size``,
``input_p``), as flags (``--p 0,0.1,0.3 --hidden "64;256,256" --lr 1e-3,1e-2``) or in a
TOML file (``--config grid.toml``; flags given on the command line override the file),
times ``--seeds`` seeds. ``p`` is always the drop probability (not the keep probability).
Every run goes through :func:`droplab.lab.experiment.train_run`, so a run's record has the
keys of a ``compare`` record (``p``, ``seed``, ``metrics``, ``history``) plus the knobs of
its grid point and a ``key`` that names the run.

Runs are dispatched through joblib: local processes (loky) with ``--workers``, or a dask
or ray cluster with ``--backend dask|ray`` when those packages are installed. Seed ``s`` of
every grid point starts from the same initial weights, so points are compared on common
random numbers, and a record does not depend on the worker or the order it ran in.

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
  ``compare``; ``summary`` adds a 95% confidence interval over seeds) and the plots
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
from droplab.errors import FileError, InvalidValueError

__all__ = ["KNOBS", "DEFAULTS", "expand", "config_hash", "load_runs", "append_record", "t_quantile",
           "summarize_points", "HELP"]

HELP = "a grid of p (and other knobs) x seeds, in parallel, resumable"

WHERE = "sweep"
FORMAT = 1  # version of the run-key / config-hash recipe

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
    "p": [0.0, 0.1, 0.2, 0.3, 0.5],
}
KNOBS = tuple(DEFAULTS)
_FLOATS = ("lr", "l2", "input_p", "p")
_INTS = ("epochs", "batch_size")
_STRINGS = ("dataset", "variant", "activation", "optimizer")
_TOML_EXTRA = ("seeds", "label")
METRICS = ("train_accuracy", "val_accuracy", "gap", "train_loss", "val_loss", "seconds_per_epoch")


def configure(parser: argparse.ArgumentParser) -> None:
    def d(knob: str) -> str:
        vals = DEFAULTS[knob]
        if knob == "hidden":
            return ";".join(",".join(map(str, h)) for h in vals)
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals)

    g = parser.add_argument_group("grid (comma-separated values; every combination is run)")
    b = _validate.bounds_help
    g.add_argument("--p", default=argparse.SUPPRESS, help=f"drop probabilities, each {b('p')} (default {d('p')})")
    g.add_argument("--dataset", default=argparse.SUPPRESS,
                   help=f"registered data sets or .npz/.csv files (default {d('dataset')})")
    g.add_argument("--hidden", default=argparse.SUPPRESS,
                   help=f"hidden layer sizes; architectures separated by ';' (each size 1 to {_validate.MAX_WIDTH}, "
                        f"at most {_validate.MAX_DEPTH} layers; default {d('hidden')})")
    g.add_argument("--variant", default=argparse.SUPPRESS, help=f"dropout variants, e.g. dropout,classic (default {d('variant')})")
    g.add_argument("--activation", default=argparse.SUPPRESS, help=f"relu, leaky_relu, tanh, sigmoid, selu "
                                                      f"(default {d('activation')})")
    g.add_argument("--optimizer", default=argparse.SUPPRESS, help=f"adam, adamw, sgd (default {d('optimizer')})")
    g.add_argument("--lr", default=argparse.SUPPRESS, help=f"learning rates, each {b('lr')} (default {d('lr')})")
    g.add_argument("--l2", default=argparse.SUPPRESS,
                   help=f"L2 penalties on every weight matrix, each {b('l2')} (default {d('l2')})")
    g.add_argument("--epochs", default=argparse.SUPPRESS,
                   help=f"passes over the training data, each {b('epochs')} (default {d('epochs')})")
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
    parser.add_argument("--workers", type=_validate.flag_type("workers"), default=1,
                        help=f"parallel runs: processes, or cluster tasks ({b('workers')})")
    parser.add_argument("--backend", default="loky",
                        help="joblib backend: loky (local processes), dask or ray (when installed)")


# ---------------------------------------------------------------------------------------------
# the grid


def _canon(knob: str, value: Any, where: str) -> Any:
    """One knob value in canonical form (floats as float, hidden as a list of ints), validated."""
    from droplab.lab import experiment, models

    if knob == "hidden":
        if isinstance(value, str) or (isinstance(value, (list, tuple))):
            return list(_validate.hidden_sizes(where, "hidden", models.parse_hidden(value)))
        raise TypeError(_validate.message(where, "hidden", "a list of layer sizes like [256, 256]", value))
    if knob in _FLOATS:
        if knob in ("p", "input_p"):
            return _validate.within(where, knob, _validate.probability(where, knob, value))
        if knob == "lr":
            return _validate.within(where, knob, _validate.positive_float(where, knob, value))
        return _validate.within(where, knob, _validate.nonnegative_float(where, knob, value))
    if knob == "epochs":
        return _validate.within(where, knob, _validate.positive_int(where, knob, value))
    if knob == "batch_size":
        return _validate.within(where, knob, _validate.nonnegative_int(where, knob, value))
    if not isinstance(value, str):
        raise TypeError(_validate.message(where, knob, "a string", value))
    if knob == "variant":
        return _validate.one_of(where, knob, value, models.VARIANTS)
    if knob == "activation":
        return _validate.one_of(where, knob, value, models.ACTIVATIONS)
    if knob == "optimizer":
        return _validate.one_of(where, knob, value, experiment.OPTIMIZERS)
    return value  # dataset: checked by loading it


def _from_flag(knob: str, text: str) -> list[Any]:
    """Parse one flag's text: comma-separated values (architectures separated by ';')."""
    flag = "--" + knob.replace("_", "-")
    parts = [t.strip() for t in (text.split(";") if knob == "hidden" else text.split(","))]
    if knob != "hidden":
        parts = [t for t in parts if t]
    if not parts:
        raise ValueError(_validate.message(WHERE, knob, "at least one value", text))
    out = []
    for t in parts:
        if knob in _FLOATS or knob in _INTS:
            kind, example = (float, "0,0.1,0.3") if knob in _FLOATS else (int, "10,20")
            try:
                v = kind(t)
            except ValueError:
                raise ValueError(_validate.message(WHERE, knob, f"comma-separated numbers like {example} ({flag})",
                                                   text)) from None
            out.append(v)
        else:
            out.append(t)
    return out


def _from_toml(knob: str, value: Any) -> list[Any]:
    if knob == "hidden":
        if isinstance(value, str):
            return [t.strip() for t in value.split(";")]
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
            raise ValueError(_validate.message(WHERE, "config", "readable with tomllib (Python >= 3.11)", str(path),
                                               "On Python 3.10, pip install tomli or give the grid as flags.")
                             ) from None
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(_validate.message(WHERE, "config", "an existing TOML file", str(path))) from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(_validate.message(WHERE, "config", "a valid TOML file", str(path), f"{exc}.")) from None
    allowed = (*KNOBS, *_TOML_EXTRA)
    out = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(allowed)}."
            raise ValueError(_validate.message(f"{WHERE} ({path.name})", "key", "a knob of the grid", key, hint))
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
        if flag is not None:
            raw, where = _from_flag(knob, str(flag)), WHERE
        elif knob in file:
            raw, where = _from_toml(knob, file[knob]), where_file
        else:
            raw, where = DEFAULTS[knob], WHERE
        if not raw:
            raise ValueError(_validate.message(where, knob, "at least one value", raw))
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
        raise TypeError(_validate.message(where_file, "label", "a column name (string)", label))
    return grid, seeds, label


# ---------------------------------------------------------------------------------------------
# one run (executed in a worker process)

_DATASETS: dict[tuple[str, str], Any] = {}


def _dataset(name: str, label: str):
    from droplab import data

    key = (name, label)
    if key not in _DATASETS:
        options = {"label": label} if name.lower().endswith(".csv") else {}
        _DATASETS[key] = data.load(name, **options)
    return _DATASETS[key]


def run_config(point: dict[str, Any]):
    """The :class:`~droplab.lab.experiment.RunConfig` of a grid point."""
    from droplab.lab import experiment

    return experiment.RunConfig(
        hidden=tuple(point["hidden"]), activation=point["activation"], variant=point["variant"],
        input_p=point["input_p"], epochs=point["epochs"],
        batch_size=None if point["batch_size"] == 0 else point["batch_size"],
        optimizer=point["optimizer"], lr=point["lr"], l2=point["l2"])


_WARM = False


def _warm_kernels() -> None:
    """Compile (or load) the mask kernels once per process, before anything is timed."""
    global _WARM
    if not _WARM:
        import numpy as np

        from droplab import kernels

        for dt in (np.float32, np.float64):
            kernels.apply(np.ones(64, dt), 0.5, (0, 0), 0, 2.0)
        _WARM = True


def _worker_init(parent: int) -> None:
    """Run in each loky worker as it starts: make it die with the sweep's process.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the moment its
    parent dies (even by ``kill -9``); elsewhere a daemon thread watches the parent's pid. Without
    this, loky's workers outlive a killed parent until their idle timeout (minutes).
    """
    import signal
    import threading
    import time

    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="droplab-parent-watch", daemon=True).start()


def _run_one(key: str, point: dict[str, Any], seed: int, label: str) -> dict[str, Any]:
    from droplab.lab import experiment

    _warm_kernels()
    try:
        record, _ = experiment.train_run(_dataset(point["dataset"], label), run_config(point), p=point["p"],
                                         seed=seed)
    except FloatingPointError as exc:
        # a diverging run is a result of the grid (too large a learning rate), not a reason to stop
        # the sweep; it is deterministic, so a resumed sweep counts it as done
        return {"key": key, **point, "p": point["p"], "seed": seed, "error": str(exc), "metrics": None,
                "history": None}
    return {"key": key, **point, **record}


# ---------------------------------------------------------------------------------------------
# runs.jsonl: atomic appends, torn-line recovery


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as one line: one ``write`` on an ``O_APPEND`` descriptor, then fsync."""
    from droplab.lab._results import _default

    line = (json.dumps(record, separators=(",", ":"), default=_default, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:  # a regular file takes it in one write; a short write (disk full) is finished
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_runs(path: str | os.PathLike, keys: Iterable[str] | None = None) -> tuple[dict[str, dict], int]:
    """Read ``runs.jsonl``: ``({key: record}, lines dropped)``.

    A line is kept when it ends in a newline, parses as JSON, has a ``key`` (in ``keys``, if
    given) and that key was not seen before. When anything was dropped, the file is
    rewritten atomically with the kept lines only, so later appends start on a clean line.
    """
    path = Path(path)
    if not path.exists():
        return {}, 0
    raw = path.read_bytes()
    wanted = None if keys is None else set(keys)
    kept: dict[str, dict] = {}
    lines: list[bytes] = []
    dropped = 0
    *complete, tail = raw.split(b"\n")
    dropped += bool(tail.strip())  # no newline: a write cut short
    for line in complete:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        k = rec.get("key") if isinstance(rec, dict) else None
        if not isinstance(k, str) or (wanted is not None and k not in wanted) or k in kept:
            dropped += 1
            continue
        kept[k] = rec
        lines.append(line + b"\n")
    if dropped or tail:
        with atomic_open(path) as f:
            f.write(b"".join(lines))
    return kept, dropped


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
                raise ValueError(_validate.message(
                    WHERE, "out", "a new folder or one holding a sweep of the same grid and seeds", str(out),
                    f"It holds a sweep of another grid (config hash {old_hash} != {config['hash']}); "
                    "rerun with --force to start over there (only the sweep's own files are replaced), "
                    "or pick another --out."))
            for name in _OUTPUTS:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (out / name).unlink()
    elif not force and owner(out) not in (None, "sweep"):
        raise ValueError(_validate.message(
            WHERE, "out", "an empty folder or a sweep's folder", str(out),
            f"It holds {owner(out)} results; rerun with --force to add the sweep's files there (nothing of "
            "yours is deleted), or pick another --out."))
    elif not force and _others(out):
        others = _others(out)
        raise ValueError(_validate.message(
            WHERE, "out", "an empty folder or a sweep's folder", str(out),
            f"It holds {', '.join(others[:3])}{'...' if len(others) > 3 else ''}; rerun with --force to add the "
            "sweep's files there (nothing of yours is deleted), or pick another --out."))
    write_manifest(out, "sweep", ["sweep.json", "runs.jsonl"])
    if not meta.exists():
        write_json(meta, config)


# ---------------------------------------------------------------------------------------------
# statistics

# two-sided 95% Student t quantiles t_{0.975, df} for when scipy is missing
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
         19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
         28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (the 95% CI factor).

    Uses scipy when installed, else a table (the nearest tabulated df at or below; 1.960 past 120).

    Example:
        >>> round(t_quantile(4), 3), round(t_quantile(10**6), 2)
        (2.776, 1.96)
    """
    df = _validate.positive_int("t_quantile", "df", df)
    try:
        from scipy import stats
    except ModuleNotFoundError:  # pragma: no cover - scipy comes with scikit-learn
        if df > 120:
            return 1.960
        return _T975[max(k for k in _T975 if k <= df)]
    return float(stats.t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, std (ddof=1), n and the 95% CI half-width (t-distribution; None when n = 1)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    n = len(v)
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "n": n,
            "ci95": t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else None}


def summarize_points(runs: Sequence[dict], points: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per grid point with runs: its knobs, seeds, diverged runs and mean/std/n/ci95 per metric.

    Runs that diverged (a record with ``error``) are counted in ``diverged`` and left out of the
    statistics; a point whose runs all diverged has None for each metric.
    """
    rows = []
    for point in points:
        mine = [r for r in runs if all(r.get(k) == v for k, v in point.items())]
        ok = [r for r in mine if not r.get("error") and not r.get("diverged") and r.get("metrics")]

        def stat(m: str) -> dict[str, Any] | None:
            values = [r["metrics"][m] for r in ok if r["metrics"].get(m) is not None]  # None: non-finite
            return mean_ci(values) if values else None

        if mine:
            rows.append({**point, "seeds": sorted(r["seed"] for r in mine), "diverged": len(mine) - len(ok),
                         **{m: stat(m) for m in METRICS}})
    return rows


# ---------------------------------------------------------------------------------------------
# the command


def run(args: argparse.Namespace) -> int:
    from droplab.lab import _results

    # everything is validated before anything is written
    grid, n_seeds, label = build_grid(args)
    seed = _validate.nonnegative_int(WHERE, "seed", args.seed)
    workers = _validate.within(WHERE, "workers", _validate.positive_int(WHERE, "workers", args.workers))
    backend = _validate.one_of(WHERE, "backend", args.backend, ("loky", "dask", "ray"))
    _check_backend(backend)
    seeds = [seed + i for i in range(n_seeds)]
    points = expand(grid)
    for point in points:
        run_config(point).validate(WHERE)
    for name in grid["dataset"]:
        _dataset(name, label)  # bad names fail here, before anything is written
    tasks = [(run_key(pt, s), pt, s) for pt in points for s in seeds]
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
            return _sweep(args, out, config, tasks, points, grid, seeds, label, workers, backend, force)
    except OSError as exc:
        if isinstance(exc, FileError) and "--out" in str(exc):
            raise
        raise _results.file_error(WHERE, out, exc) from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                if not os.listdir(out):
                    out.rmdir()


def _sweep(args, out, config, tasks, points, grid, seeds, label, workers, backend, force) -> int:
    """The sweep itself, in the locked folder ``out``: resume what is there, run the rest, write the results."""
    from droplab.lab import _results
    from droplab.lab._results import versions, write_json

    _results.check_out(out, WHERE, force=force)  # again, now that no other command can change it
    _results.remove_stale(out)
    prepare_out(out, config, force)
    runs_path = out / "runs.jsonl"
    done, dropped = load_runs(runs_path, keys=[t[0] for t in tasks])
    todo = [t for t in tasks if t[0] not in done]
    from rich.console import Console

    # a table of a dozen columns: 120 characters when the output is a file or a pipe, not rich's 80
    console = Console(quiet=args.quiet, width=None if sys.stdout.isatty() else 120)
    if done:
        console.print(f"resuming {out}: {len(done)} of {len(tasks)} runs done, {len(todo)} to go"
                      + (f" ({dropped} torn or stray line(s) dropped)" if dropped else ""), soft_wrap=True)
    if todo:
        _execute(todo, label, workers, backend, runs_path, done, console, args.quiet, len(tasks))
    order = {t[0]: i for i, t in enumerate(tasks)}
    runs = sorted(done.values(), key=lambda r: order[r["key"]])
    summary = summarize_points(runs, points)
    results = {"command": "sweep",
               "config": {k: v for k, v in config.items() if k != "command"} | {"workers": workers,
                                                                                "backend": backend},
               "versions": versions(), "runs": runs, "summary": summary,
               "best": best_points(summary, grid)}
    write_json(out / "results.json", results)
    plot_sweep(summary, grid, out)
    _results.write_manifest(out, "sweep", _OUTPUTS)
    _print_table(console, summary, grid, len(seeds))
    console.print(f"results written to {out}/ (runs.jsonl, results.json, sweep_p.png, gap.png)", soft_wrap=True)
    return 0


def _check_backend(backend: str) -> None:
    need = {"dask": ("distributed", "pip install 'dask[distributed]'"), "ray": ("ray", "pip install 'ray[default]'")}
    if backend in need:
        import importlib.util

        module, how = need[backend]
        if importlib.util.find_spec(module) is None:
            raise ValueError(_validate.message(WHERE, "backend", "loky, or a backend whose package is installed",
                                               backend, f"{module} is not installed: {how}, or use --backend loky."))


@contextlib.contextmanager
def _backend(backend: str, workers: int) -> Iterator[None]:
    import joblib

    if backend == "loky":
        try:
            # each worker dies with this process, even when it is killed with SIGKILL
            with joblib.parallel_config(backend="loky", n_jobs=workers, initializer=_worker_init,
                                        initargs=(os.getpid(),)):
                yield
        finally:
            if workers > 1:  # stop the worker processes now rather than after loky's idle timeout
                from joblib.externals.loky import get_reusable_executor

                get_reusable_executor().shutdown(wait=True)
    elif backend == "dask":  # pragma: no cover - needs dask.distributed
        from dask.distributed import Client

        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
        with (Client(address) if address else Client(n_workers=workers, threads_per_worker=1)):
            with joblib.parallel_config(backend="dask", n_jobs=workers):
                yield
    else:  # pragma: no cover - needs ray
        from ray.util.joblib import register_ray

        register_ray()
        with joblib.parallel_config(backend="ray", n_jobs=workers):
            yield


def _execute(todo, label, workers, backend, runs_path, done, console, quiet, total) -> None:
    import joblib
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=quiet, transient=True, console=console)
    try:
        with progress, _backend(backend, workers):
            task = progress.add_task("sweep", total=total, completed=len(done))
            jobs = (joblib.delayed(_run_one)(key, pt, s, label) for key, pt, s in todo)
            results = joblib.Parallel(return_as="generator_unordered", batch_size=1)(jobs)
            for record in results:
                append_record(runs_path, record)  # the parent alone writes, as each run finishes
                done[record["key"]] = record
                progress.advance(task)
    except KeyboardInterrupt:
        console.print(f"{len(done)} of {total} runs saved in {runs_path}; rerun the same command to resume",
                      soft_wrap=True)
        raise


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
    from droplab.lab.plots import COLORS, pyplot

    plt = pyplot()
    keys = _varying(grid)
    lines: dict[str, list[dict]] = {}
    for row in summary:
        if row["val_accuracy"] is not None:  # not every run of the point diverged
            lines.setdefault(_line_label(row, keys), []).append(row)

    def draw(ax, metric: str, mult: float, ylabel: str) -> None:
        span = max(grid["p"]) - min(grid["p"]) or 1.0
        for i, (name, rows) in enumerate(lines.items()):
            rows = sorted(rows, key=lambda r: r["p"])
            dodge = (i - (len(lines) - 1) / 2) * 0.008 * span  # error bars of lines side by side, not on top
            x = [r["p"] + dodge for r in rows]
            y = [r[metric]["mean"] * mult for r in rows]
            err = [(r[metric]["ci95"] or 0.0) * mult for r in rows]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, lw=1.5, color=COLORS[i % len(COLORS)],
                        ls=("-", "--", ":", "-.")[(i // len(COLORS)) % 4], label=name)
        ax.set_xlabel("p (drop probability)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)

    n = min((r["val_accuracy"]["n"] for rows in lines.values() for r in rows), default=0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    draw(axes[0], "val_accuracy", 100, "validation accuracy (%)")
    draw(axes[1], "val_loss", 1, "validation loss")
    fig.suptitle(f"sweep: mean and 95% CI over {n} seed(s)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.22)  # tight_layout costs 0.3 s
    _save_fig(fig, out / "sweep_p.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax, "gap", 100, "train - validation accuracy (points)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title(f"generalisation gap, mean and 95% CI over {n} seed(s)")
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    _save_fig(fig, out / "gap.png")
    plt.close(fig)


def _print_table(console, summary, grid, n_seeds) -> None:
    from rich.table import Table

    keys = _varying(grid) + ["p"]
    table = Table(title=f"droplab sweep: mean ± 95% CI over {n_seeds} seed(s)")
    for k in keys:
        table.add_column(k, justify="right" if k != "dataset" else "left")
    cols = [("val acc", "val_accuracy", 100, "{:.1f}"), ("train acc (eval)", "train_accuracy", 100, "{:.1f}"),
            ("gap (points)", "gap", 100, "{:.1f}"), ("val loss", "val_loss", 1, "{:.3f}"),
            ("ms / epoch", "seconds_per_epoch", 1000, "{:.1f}")]
    for name, *_ in cols:
        table.add_column(name, justify="right")
    diverged = any(row["diverged"] for row in summary)
    if diverged:
        table.add_column("diverged", justify="right")
    for row in summary:
        cells = []
        for _, key, mult, fmt in cols:
            s = row[key]
            if s is None:
                cells.append("–")
                continue
            ci = "" if s["ci95"] is None else f" ± {fmt.format(s['ci95'] * mult)}"
            cells.append(fmt.format(s["mean"] * mult) + ci)
        if diverged:
            cells.append(f"{row['diverged']}/{len(row['seeds'])}")
        table.add_row(*(_fmt(k, row[k]) for k in keys), *cells)
    console.print(table)
