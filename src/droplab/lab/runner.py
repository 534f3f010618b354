"""The lab's one execution layer: independent runs, in parallel, journaled, resumable.

Every command that trains several networks (compare, sweep, ensemble, every study) describes
them as :class:`Task` values (a :class:`~droplab.lab.experiment.RunConfig`, a drop
probability, a seed and the record's labels) and calls :func:`execute`:

* **Where runs execute** (``--backend``): ``loky`` runs them in local worker processes
  (``--workers``, default: the usable cores), through joblib; ``--workers 1`` runs them one
  after another in this process. ``dask`` and ``ray`` (``--address``) go through joblib's
  backends of those packages (:func:`backend`: the one place a cluster backend plugs in).
  Each local worker dies with its parent (``PR_SET_PDEATHSIG``) and computes with one BLAS
  thread and one numba thread, so N workers use N cores without oversubscription.
* **Results do not depend on the worker count**: a run's weights, masks and shuffling come
  from its seed alone, every run is computed with one thread (BLAS and numba) wherever it
  runs, and records are returned in task order. ``compare --workers 1`` and ``--workers 2``
  write identical records, timings aside (tested).
* **One resume design** (:class:`Journal`): each finished run is appended to a journal
  (``runs.jsonl``: one JSON line per record, one ``write`` on an ``O_APPEND`` descriptor, then
  ``fsync``) by the parent alone, as it arrives; the run in progress is checkpointed every
  ``checkpoint_every`` epochs (NumPy engine). The journal is stamped with the hash of what is
  computed. Rerunning the same command with the same flags on the same ``--out`` resumes:
  finished runs are reused, interrupted ones continue bit-identically from their checkpoint,
  and a torn line or a damaged checkpoint is named and only that run is computed again.
  ``--resume`` asks for exactly that and refuses a journal of other flags; without it, a
  journal of other flags is discarded (the sweep, whose journal is its results folder,
  refuses it unless ``--force`` instead).
* **Progress** is one bar over every run's epochs, advanced as runs finish (per epoch with one
  worker), with the number of workers in its description.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from droplab import _validate

__all__ = ["Task", "Journal", "Ran", "execute", "run_key", "digest", "dataset", "BACKENDS", "check_backend",
           "backend", "append_record", "load_runs", "progress_bar"]

BACKENDS = ("loky", "dask", "ray")
FORMAT = 1  # version of the run-key recipe


def digest(obj: Any) -> str:
    """A stable hash of a JSON-able object (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_key(point: dict[str, Any], seed: int) -> str:
    """The name of one run: a hash of what it computes and its seed (stable across processes)."""
    return digest({"format": FORMAT, "point": point, "seed": seed})[:16]


@dataclass(frozen=True)
class Task:
    """One run: train ``cfg`` with drop probability ``p`` and ``seed``.

    ``fields`` go into the record before the run's own keys (``arm``, the sweep's knobs);
    ``keep_model`` hands the trained model back (compare's plots); ``measure(model, ds, task)``
    runs in the worker after training and adds its dict to the record (a study's extra
    measurement).
    """

    key: str
    cfg: Any  # experiment.RunConfig
    p: float
    seed: int
    fields: dict = field(default_factory=dict)
    keep_model: bool = False
    measure: Callable | None = None

    @property
    def epochs(self) -> int:
        return int(self.cfg.epochs)


# ---------------------------------------------------------------------------------------------
# data, loaded once per process

_DATASETS: dict[str, Any] = {}


def _data_key(cfg) -> str:
    return digest([cfg.dataset, cfg.label, cfg.data_options])


def dataset(cfg):
    """The data set of a run config, loaded once per process (the parent's copy is reused)."""
    from droplab import data

    key = _data_key(cfg)
    if key not in _DATASETS:
        options = dict(cfg.data_options)
        if str(cfg.dataset).lower().endswith(".csv"):
            options.setdefault("label", cfg.label)
        try:
            _DATASETS[key] = data.load(cfg.dataset, **options)
        except ValueError as exc:  # the lab's users type --label, not the library's label=
            import re

            text = str(exc)
            fixed = re.sub(r"label='([^']*)'", r"--label \1", text)
            if fixed == text:
                raise
            raise type(exc)(fixed.replace("?.", "?")) from None
    return _DATASETS[key]


# ---------------------------------------------------------------------------------------------
# the journal: runs.jsonl (atomic appends, torn-line recovery), a stamp, checkpoints


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as one line: one ``write`` on an ``O_APPEND`` descriptor, then fsync."""
    from droplab.lab._results import _default

    line = (json.dumps(record, separators=(",", ":"), default=_default, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(line)
        while view:  # a regular file takes it in one write; a short write (disk full) is finished
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_runs(path: str | os.PathLike, keys: Iterable[str] | None = None) -> tuple[dict[str, dict], int]:
    """Read a journal: ``({key: record}, lines dropped)``.

    A line is kept when it ends in a newline, parses as JSON, has a ``key`` (in ``keys``, if
    given) and that key was not seen before. When anything was dropped, the file is
    rewritten atomically with the kept lines only, so later appends start on a clean line.
    """
    from droplab._files import atomic_open

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
        with atomic_open(path, "wb") as f:
            f.write(b"".join(lines))
    return kept, dropped


class Journal:
    """Finished runs (``runs``, a JSON-lines file), the hash they were computed for (``stamp``)
    and the checkpoints and kept models of runs (in ``work``), for :func:`execute`.

    ``stamp`` holds the hash as text, or a JSON object with a ``hash`` (a sweep's
    ``sweep.json``, which :mod:`droplab.lab.sweep` writes itself).
    """

    def __init__(self, runs: Path, stamp: Path, work: Path, hash_: str, where: str) -> None:
        self.runs, self.stamp, self.work, self.hash, self.where = Path(runs), Path(stamp), Path(work), hash_, where

    @classmethod
    def hidden(cls, out: Path, spec: Any, where: str) -> Journal:
        """The journal of a command whose results are written at the end: ``--out/.droplab-work``."""
        from droplab.lab._results import WORK

        work = Path(out) / WORK
        return cls(work / "runs.jsonl", work / "config.sha256", work, digest(spec), where)

    def found(self) -> str | None:
        try:
            text = self.stamp.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        return doc.get("hash") if isinstance(doc, dict) else text

    def open(self, keys: Sequence[str], *, resume: bool = False, note: Callable[[str], None] = print
             ) -> dict[str, dict]:
        """The finished runs to reuse (``{key: record}``); starts a new journal when there is none
        or it was made for other flags (refused with ``resume``)."""
        found = self.found() if self.stamp.exists() or self.work.is_dir() else None
        if found is not None and found == self.hash:
            done, dropped = load_runs(self.runs, keys)
            if dropped:
                note(f"{self.runs} is damaged: {dropped} torn or stray line(s) dropped; their runs are computed "
                     "again")
            return done
        if resume and self.work.is_dir():
            raise ValueError(_validate.message(
                self.where, "resume", "used with the flags of the interrupted run", True,
                f"{self.work} was made by a different command line (or its {self.stamp.name} is damaged); "
                "rerun without --resume to start afresh."))
        if self.work.is_dir():
            shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        if self.stamp.parent == self.work:
            self.stamp.write_text(self.hash + "\n")
        with contextlib.suppress(FileNotFoundError):
            if self.runs.parent == self.work:
                self.runs.unlink()
        return {}

    def checkpoint(self, index: int) -> Path:
        return self.work / f"run-{index}.ckpt.npz"

    def model(self, index: int) -> Path:
        return self.work / f"run-{index}.model.npz"

    def append(self, record: dict) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        append_record(self.runs, {k: v for k, v in record.items() if not k.startswith("_")})

    def close(self) -> None:
        """Remove the checkpoints and kept models (and a hidden journal): the results are in place."""
        shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# one run, in a worker or in this process

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


def _numba_threads(n: int | None) -> int | None:
    """Set numba's thread count for this thread; returns the previous one (None without numba)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    old = numba.get_num_threads()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return old


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One BLAS thread and one numba thread: a run computes the same bits wherever it runs."""
    from threadpoolctl import threadpool_limits

    old = _numba_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        _numba_threads(old)


def _worker_init(parent: int) -> None:
    """Run in each loky worker as it starts: one BLAS and one numba thread, and die with the parent.

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
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # for the worker's life: each worker is one core's worth of work
    _numba_threads(1)


def _train(ds, task: Task, ckpt: Path | None, every: int, notes: list[str], on_epoch=None):
    from droplab.lab import experiment

    if task.cfg.engine == "torch":
        from droplab.lab.torch_runner import train_run

        return train_run(ds, task.cfg, p=task.p, seed=task.seed, on_epoch=on_epoch)
    try:
        return experiment.train_run(ds, task.cfg, p=task.p, seed=task.seed, on_epoch=on_epoch, checkpoint=ckpt,
                                    checkpoint_every=every)
    except (ValueError, OSError) as exc:
        if ckpt is None or not ckpt.exists():
            raise
        notes.append(f"{ckpt} could not be resumed ({exc}); its run starts again from its first epoch")
        ckpt.unlink()
        return experiment.train_run(ds, task.cfg, p=task.p, seed=task.seed, on_epoch=on_epoch, checkpoint=ckpt,
                                    checkpoint_every=every)


def _work(task: Task, ckpt: Path | None, model_out: Path | None, every: int, on_epoch=None) -> dict:
    """One run, start to record: train (resuming from ``ckpt``), measure, keep the model."""
    _warm_kernels()
    ds = dataset(task.cfg)
    notes: list[str] = []
    if str(task.cfg.variant).startswith("bug-"):
        ckpt = None  # the bug gallery's broken layers are not droplab.nn classes: no checkpoint file
    with _one_thread():
        try:
            record, model = _train(ds, task, ckpt, every, notes, on_epoch)
        except FloatingPointError as exc:
            # a diverging run is a result (too large a learning rate), not a reason to stop; it is
            # deterministic, so a resumed command counts it as done
            record, model = {"p": task.p, "seed": task.seed, "error": str(exc), "metrics": None,
                             "history": None}, None
        if task.measure is not None and model is not None and not record.get("error"):
            record.update(task.measure(model, ds, task))
    out = {"key": task.key, **task.fields, **record}
    if task.cfg.engine == "torch" and "backend" in out:
        out["engine"] = out.pop("backend")  # droplab.torch's records name the engine "backend"
        out["backend"] = out["engine"]  # (deprecated key, kept for one release)
    if task.keep_model and model is not None and not record.get("error"):
        if model_out is not None and task.cfg.engine == "numpy":
            model.save(model_out)
        else:
            out["_model"] = model
    if notes:
        out["_notes"] = notes
    return out


# ---------------------------------------------------------------------------------------------
# where runs execute


def check_backend(name: str, where: str) -> str:
    """``--backend``, refused with one line when unknown or when its package is missing."""
    name = _validate.one_of(where, "backend", name, BACKENDS)
    need = {"dask": ("distributed", "pip install 'dask[distributed]'"), "ray": ("ray", "pip install 'ray[default]'")}
    if name in need:
        import importlib.util

        module, how = need[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(_validate.message(where, "backend", "loky, or a backend whose package is installed",
                                               name, f"{module} is not installed: {how}, or use --backend loky."))
    return name


@contextlib.contextmanager
def backend(name: str, workers: int, address: str | None = None) -> Iterator[None]:
    """joblib's configuration for ``--backend name`` with ``workers`` processes or tasks."""
    import joblib

    if name == "loky":
        try:
            with joblib.parallel_config(backend="loky", n_jobs=workers, initializer=_worker_init,
                                        initargs=(os.getpid(),)):
                yield
        finally:  # stop the worker processes now rather than after loky's idle timeout
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True)
    elif name == "dask":  # pragma: no cover - needs dask.distributed
        from dask.distributed import Client

        address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
        with (Client(address) if address else Client(n_workers=workers, threads_per_worker=1)):
            with joblib.parallel_config(backend="dask", n_jobs=workers):
                yield
    else:  # pragma: no cover - needs ray
        import ray
        from ray.util.joblib import register_ray

        if address and not ray.is_initialized():
            ray.init(address=address)
        register_ray()
        with joblib.parallel_config(backend="ray", n_jobs=workers):
            yield


def progress_bar(console, quiet: bool, *, transient: bool = True):
    """The lab's progress bar: description, bar, done/total, time left (fits 80 columns)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=quiet, transient=transient, console=console)


@dataclass
class Ran:
    """What :func:`execute` hands back: the records in task order and the kept models by key."""

    records: list[dict]
    models: dict[str, Any]
    reused: int = 0


def execute(tasks: Sequence[Task], *, workers: int = 1, backend_name: str = "loky", address: str | None = None,
            journal: Journal | None = None, resume: bool = False, console=None, quiet: bool = True,
            description: str = "runs", checkpoint_every: int = 10) -> Ran:
    """Run ``tasks`` (skipping those the journal holds) and return their records in task order.

    Validation, data loading and the results folder are the caller's; this runs, journals,
    shows progress and resumes. ``workers == 1`` with loky runs in this process.
    """
    from droplab import nn

    if console is None:
        from rich.console import Console

        console = Console(quiet=True)

    def note(text: str) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False)

    index = {t.key: i for i, t in enumerate(tasks)}
    done: dict[str, dict] = journal.open(list(index), resume=resume, note=note) if journal is not None else {}
    models: dict[str, Any] = {}
    for key in list(done):  # a kept model must be on disk, else its run is computed again
        t = tasks[index[key]]
        if t.keep_model and t.cfg.engine == "numpy" and not done[key].get("error"):
            path = journal.model(index[key])
            try:
                models[key] = nn.load(path)
            except (ValueError, OSError) as exc:
                if path.exists():
                    note(f"{path} is damaged ({exc}); its run is computed again")
                del done[key]
        elif t.keep_model and not done[key].get("error"):
            del done[key]  # a torch model is not kept on disk: train it again
    reused = len(done)
    todo = [t for t in tasks if t.key not in done]
    if reused:
        note(f"resuming: {reused} of {len(tasks)} runs done, {len(todo)} to go")
    total = sum(t.epochs for t in tasks)

    def paths(t: Task):
        if journal is None:
            return None, None
        i = index[t.key]
        return journal.checkpoint(i), journal.model(i) if t.keep_model else None

    def finished(rec: dict) -> None:
        for text in rec.pop("_notes", ()):
            note(text)
        model = rec.pop("_model", None)
        key = rec["key"]
        if journal is not None:
            journal.append(rec)
            mpath = journal.model(index[key])
            if tasks[index[key]].keep_model and model is None and mpath.exists():
                model = nn.load(mpath)
        if model is not None:
            models[key] = model
        done[key] = rec

    workers = max(1, min(int(workers), len(todo) or 1))
    in_process = backend_name == "loky" and workers == 1
    bar = progress_bar(console, quiet)
    try:
        with bar:
            what = f"{description} ({workers} worker{'s' if workers > 1 else ''})"
            task_id = bar.add_task(what, total=total, completed=sum(tasks[index[k]].epochs for k in done))
            if in_process:
                for t in todo:
                    ckpt, mpath = paths(t)
                    before = bar.tasks[0].completed
                    rec = _work(t, ckpt, mpath, checkpoint_every, on_epoch=lambda: bar.advance(task_id))
                    bar.update(task_id, completed=before + t.epochs)
                    finished(rec)
            elif todo:
                import joblib

                with backend(backend_name, workers, address):
                    jobs = (joblib.delayed(_work)(t, *paths(t), checkpoint_every) for t in todo)
                    for rec in joblib.Parallel(return_as="generator_unordered", batch_size=1)(jobs):
                        finished(rec)  # the parent alone writes, as each run finishes
                        bar.advance(task_id, tasks[index[rec["key"]]].epochs)
    except KeyboardInterrupt:
        if journal is not None:
            note(f"interrupted: {len(done)} of {len(tasks)} runs are kept in {journal.runs}; rerun the same "
                 "command to continue")
        raise
    return Ran([done[t.key] for t in tasks], models, reused)
