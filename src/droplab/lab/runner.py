"""The lab's one execution layer: independent runs, in parallel, journaled, resumable.

Every command that trains several networks (compare, sweep, ensemble, every study) describes
them as :class:`Task` values (a :class:`~droplab.lab.experiment.RunConfig`, a drop
probability, a seed and the record's labels) and calls :func:`execute`:

* **Where runs execute** (``--backend``, :func:`backend`: the one place a backend plugs in):
  ``loky`` runs them in local worker processes (``--workers``, default: the usable cores),
  through joblib; ``--workers 1`` runs them one after another in this process. Each local
  worker dies with its parent (``PR_SET_PDEATHSIG``). ``dask`` submits each run to a
  ``distributed`` cluster and collects them with ``distributed.as_completed``; ``ray`` submits
  remote tasks and collects them with ``ray.wait``. Without ``--address`` (nor
  ``$DASK_SCHEDULER_ADDRESS`` / ``$RAY_ADDRESS``) a local cluster of ``--workers`` one-thread
  processes is started for the command and stopped after it; with one, ``--workers`` is the
  most runs in flight on that cluster at once (default: its cores), and the cluster is not
  resized. The address is probed first (:data:`CONNECT_TIMEOUT` seconds at most). Cluster
  workers get the data set's arrays from the client (loaded and validated once there), never
  a path, so a relative ``--dataset`` works on workers in another directory or machine. Every
  run computes with one BLAS thread and one numba thread, so N workers use N cores without
  oversubscription. Each record names the ``host`` it ran on.
* **Results do not depend on the worker count**: a run's weights, masks and shuffling come
  from its seed alone, every run is computed with one thread (BLAS and numba) wherever it
  runs, and records are returned in task order. ``compare --workers 1`` and ``--workers 2``
  write identical records, timings aside (tested).
* **One resume design** (:class:`Journal`), whatever the backend: each finished run is
  streamed back to this process and appended to a journal
  (``runs.jsonl``: one JSON line per record, one ``write`` on an ``O_APPEND`` descriptor, then
  ``fsync``) by the parent alone, as it arrives; the run in progress is checkpointed every
  ``checkpoint_every`` epochs (NumPy engine). The journal is stamped with the hash of what is
  computed. Rerunning the same command with the same flags on the same ``--out`` resumes:
  finished runs are reused, interrupted ones continue bit-identically from their checkpoint
  (local backend; a cluster run starts again, as its worker's disk is not this one's),
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
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from droplab import _validate
from droplab.errors import DroplabError, InvalidValueError

__all__ = ["Task", "Journal", "Ran", "execute", "run_key", "digest", "dataset", "BACKENDS", "check_backend",
           "backend", "append_record", "load_runs", "progress_bar", "CONNECT_TIMEOUT", "ADDRESS_ENV",
           "cluster_address", "public_address", "check_address", "WorkerError"]

BACKENDS = ("loky", "dask", "ray")
CONNECT_TIMEOUT = 10  # seconds to reach a cluster's --address before giving up with one line
ADDRESS_ENV = {"dask": "DASK_SCHEDULER_ADDRESS", "ray": "RAY_ADDRESS"}  # where --address defaults from
_DEFAULT_PORT = {"dask": 8786, "ray": 6379}
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
            raise InvalidValueError(_validate.message(
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

_WARM: set[str] = set()


def _warm_kernels(dtype: str = "float32") -> None:
    """Load the mask kernel of ``dtype`` from numba's cache once per process, before anything is
    timed (most of the cost is numba's first load in a process, whichever kernel it is)."""
    if dtype not in _WARM:
        import numpy as np

        from droplab import kernels

        kernels.apply(np.ones(64, dtype), 0.5, (0, 0), 0, 2.0)
        _WARM.add(dtype)


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
    import atexit
    import gc

    # a worker's exit skips the collector's passes over numba's objects (~0.2 s of a core; the OS
    # frees the memory, and nothing here needs a finalizer at exit)
    atexit.register(gc.freeze)


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


def _work(task: Task, ckpt: Path | None, model_out: Path | None, every: int, on_epoch=None, ds=None) -> dict:
    """One run, start to record: train (resuming from ``ckpt``), measure, keep the model.

    ``ds``: the data set as the client loaded it (cluster workers); None loads it here.
    """
    _warm_kernels("float64" if task.cfg.model == "ensemble" else "float32")  # the ensemble network is float64
    if ds is None:
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
    out = {"key": task.key, **task.fields, **record, "host": socket.gethostname()}
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


class WorkerError(DroplabError, RuntimeError):
    """A run that failed on a cluster worker (its exception, or the worker died): one line, exit 2."""


def check_backend(name: str, where: str) -> str:
    """``--backend``, refused with one line when unknown or when its package is missing."""
    name = _validate.one_of(where, "backend", name, BACKENDS)
    need = {"dask": ("distributed", "pip install 'dask[distributed]'"), "ray": ("ray", "pip install 'ray[default]'")}
    if name in need:
        import importlib.util

        module, how = need[name]
        if importlib.util.find_spec(module) is None:
            raise InvalidValueError(_validate.message(where, "backend", "loky, or a backend whose package is installed",
                                               name, f"{module} is not installed: {how}, or use --backend loky."))
    return name


def cluster_address(name: str, address: str | None) -> str | None:
    """The cluster to use: ``--address``, else ``$DASK_SCHEDULER_ADDRESS`` / ``$RAY_ADDRESS``, else None
    (a local cluster started for the command). Always None for ``loky``."""
    if name not in ADDRESS_ENV:
        return None
    return address or os.environ.get(ADDRESS_ENV[name]) or None


def _parts(address: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of an address, without credentials, path or query."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    return scheme, rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]


def public_address(address: str | None) -> str | None:
    """An address fit to be written down: credentials (``user:secret@``), path and query stripped.

    Example:
        >>> public_address("tls://alice:s3cret@scheduler:8786/?token=x")
        'tls://scheduler:8786'
    """
    if not address:
        return address
    scheme, where = _parts(address)
    return f"{scheme}://{where}" if scheme else where


def check_address(name: str, address: str, where: str) -> None:
    """Refuse, with one line, an address nothing answers on within :data:`CONNECT_TIMEOUT` seconds."""
    scheme, netloc = _parts(address)
    if address in ("auto", "local") or scheme not in ("", "tcp", "tls", "ray"):
        return  # ray's own discovery, or a transport this check cannot open (inproc, ucx): the library's
    example = {"dask": "tcp://host:8786", "ray": "host:6379 or ray://host:10001"}[name]
    host, port = netloc, ""
    if netloc.startswith("["):  # [IPv6]:port
        host, _, tail = netloc[1:].partition("]")
        port = tail.lstrip(":")
    elif netloc.count(":") == 1:
        host, _, port = netloc.partition(":")
    try:
        port_n = int(port) if port else (10001 if scheme == "ray" else _DEFAULT_PORT[name])
    except ValueError:
        port_n = -1
    if not host or not 0 < port_n < 65536:
        raise InvalidValueError(_validate.message(where, "address", f"a {name} address like {example}",
                                           public_address(address)))
    try:
        socket.create_connection((host, port_n), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc) or type(exc).__name__)
        env = ADDRESS_ENV[name]
        raise InvalidValueError(_validate.message(
            where, "address", f"a reachable {name} {'scheduler' if name == 'dask' else 'cluster'}",
            public_address(address),
            f"{host}:{port_n} gave '{reason}' within {CONNECT_TIMEOUT} s; start the cluster, fix --address "
            f"(or ${env}), or drop both for a local cluster.")) from None
    if name == "dask" and scheme in ("", "tcp"):  # tls needs the client's security settings: the Client checks it
        _dask_hello(address if scheme else f"tcp://{host}:{port_n}", where)


def _dask_hello(address: str, where: str) -> None:
    """Ask the scheduler who it is, in :data:`CONNECT_TIMEOUT` seconds: distributed's own
    ``Client(timeout=)`` waits forever on a port that accepts but never answers."""
    import asyncio
    import threading

    from distributed.comm import connect

    async def hello() -> Any:
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    result: list[Any] = []

    def ask() -> None:
        try:
            result.append(asyncio.run(asyncio.wait_for(hello(), CONNECT_TIMEOUT)))
        except BaseException as exc:  # noqa: BLE001 - reported below as one line
            result.append(exc)

    thread = threading.Thread(target=ask, name="droplab-dask-hello", daemon=True)
    thread.start()  # its own event loop: the caller may be inside one (a notebook)
    thread.join(CONNECT_TIMEOUT + 1)
    reply = result[0] if result else TimeoutError()
    if isinstance(reply, BaseException) or not isinstance(reply, dict):
        why = "no answer" if isinstance(reply, (TimeoutError, asyncio.TimeoutError)) else (
            f"{type(reply).__name__}: {' '.join(str(reply).split())[:160]}" if isinstance(reply, BaseException)
            else "not a dask scheduler's answer")
        raise InvalidValueError(_validate.message(
            where, "address", "a reachable dask scheduler", public_address(address),
            f"It gave {why} within {CONNECT_TIMEOUT} s; start the cluster, fix --address (or "
            "$DASK_SCHEDULER_ADDRESS), or drop both for a local cluster."))


def _failed(where: str, name: str, task: Task, exc: BaseException) -> WorkerError:
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 300:
        text = text[:300] + "..."
    return WorkerError(f"{where}: run {task.key} (p={task.p:g}, seed={task.seed}) failed on the {name} cluster: "
                       f"{type(exc).__name__}: {text}; the finished runs are kept: rerun the same command to "
                       "continue.")


def _local_records(todo, paths, every, workers):
    """loky: joblib's unordered generator over local worker processes."""
    import joblib

    jobs = (joblib.delayed(_work)(t, *paths(t), every) for t in todo)
    yield from joblib.Parallel(n_jobs=workers, return_as="generator_unordered", batch_size=1)(jobs)


def _dask_records(client, todo, workers, where):
    """dask: at most ``workers`` runs in flight, each record handed back as it finishes."""
    from distributed import as_completed

    shipped: dict[str, Any] = {}
    for t in todo:  # the client's arrays, once per data set; workers never open a path
        k = _data_key(t.cfg)
        if k not in shipped:
            shipped[k] = client.scatter(dataset(t.cfg), hash=False)
    queue = list(todo)
    owner: dict[str, Task] = {}

    def submit():
        t = queue.pop(0)
        fut = client.submit(_work, t, None, None, 1, ds=shipped[_data_key(t.cfg)], pure=False)
        owner[fut.key] = t
        return fut

    running = as_completed([submit() for _ in range(min(workers, len(queue)))])
    try:
        for fut in running:
            t = owner.pop(fut.key)
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker's exception, or KilledWorker
                raise _failed(where, "dask", t, exc) from exc
            if queue:
                running.add(submit())
            yield rec
    finally:
        for fut in running.futures:  # interrupted: the cluster stops what this client no longer wants
            fut.cancel()


def _ray_records(todo, workers, where):
    """ray: remote tasks, at most ``workers`` in flight, collected with ``ray.wait`` as they finish."""
    import ray

    remote = ray.remote(num_cpus=1)(_work)
    shipped: dict[str, Any] = {}
    for t in todo:
        k = _data_key(t.cfg)
        if k not in shipped:
            shipped[k] = ray.put(dataset(t.cfg))
    queue = list(todo)
    owner: dict[Any, Task] = {}

    def submit() -> None:
        t = queue.pop(0)
        owner[remote.remote(t, None, None, 1, ds=shipped[_data_key(t.cfg)])] = t

    for _ in range(min(workers, len(queue))):
        submit()
    try:
        while owner:
            ready, _ = ray.wait(list(owner), num_returns=1)
            t = owner.pop(ready[0])
            try:
                rec = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError
                raise _failed(where, "ray", t, getattr(exc, "cause", None) or exc) from exc
            if queue:
                submit()
            yield rec
    finally:
        for ref in owner:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def _quiet_dask() -> None:
    import logging

    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny",
                 "distributed.core", "distributed.comm", "distributed.client", "distributed.batched"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def backend(name: str, workers: int | None, address: str | None = None, where: str = "lab"
            ) -> Iterator[tuple[Callable[..., Iterator[dict]], int]]:
    """Where runs execute: yields ``(records, workers)``, where ``records(todo, paths, every)``
    computes the tasks ``todo`` and yields each record as it finishes (any order).

    ``loky``: ``workers`` local processes. ``dask`` / ``ray``: the cluster at ``address`` (probed
    for :data:`CONNECT_TIMEOUT` seconds; ``workers`` runs in flight, None: the cluster's cores), or
    without one a local cluster of ``workers`` one-thread processes, stopped on the way out.
    """
    if name == "loky":
        import joblib

        workers = workers or _validate.usable_cores()
        try:
            with joblib.parallel_config(backend="loky", n_jobs=workers, initializer=_worker_init,
                                        initargs=(os.getpid(),)):
                yield (lambda todo, paths, every: _local_records(todo, paths, every, workers)), workers
        finally:  # stop the worker processes now rather than after loky's idle timeout
            from joblib.externals.loky import get_reusable_executor

            # reuse=True: this executor itself, not a new one for other arguments. No waiting: a
            # worker's interpreter takes 0.2-0.3 s to exit (numba's state), which the results and
            # plots need not wait for; the next executor, or this interpreter's exit, joins them.
            get_reusable_executor(reuse=True).shutdown(wait=False)
        return
    if address:
        check_address(name, address, where)
    if name == "dask":
        from distributed import Client, LocalCluster

        _quiet_dask()
        with contextlib.ExitStack() as stack:
            try:
                if address:
                    client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
                else:
                    workers = workers or _validate.usable_cores()
                    cluster = stack.enter_context(LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=":0", silence_logs=40))
                    client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError) as exc:
                raise InvalidValueError(_validate.message(
                    where, "address", "a reachable dask scheduler", public_address(address) or "(local cluster)",
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}.")) from None
            if workers is None:
                workers = max(1, sum(client.nthreads().values()))
            yield (lambda todo, paths, every: _dask_records(client, todo, workers, where)), workers
        return
    import logging

    import ray

    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            if address:
                ray.init(address=address, **kw)
            else:
                workers = workers or _validate.usable_cores()
                # RAY_ADDRESS would make ray.init join that cluster: a local one was asked for
                with _unset(ADDRESS_ENV["ray"]):
                    ray.init(num_cpus=workers, **kw)
        except (ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            raise InvalidValueError(_validate.message(
                where, "address", "a reachable ray cluster", public_address(address) or "(local cluster)",
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}.")) from None
        started = True
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield (lambda todo, paths, every: _ray_records(todo, workers, where)), workers
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _unset(var: str) -> Iterator[None]:
    old = os.environ.pop(var, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[var] = old


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


def execute(tasks: Sequence[Task], *, workers: int | None = 1, backend_name: str = "loky",
            address: str | None = None, journal: Journal | None = None, resume: bool = False, console=None,
            quiet: bool = True, description: str = "runs", checkpoint_every: int = 10, where: str = "lab") -> Ran:
    """Run ``tasks`` (skipping those the journal holds) and return their records in task order.

    Validation, data loading and the results folder are the caller's; this runs, journals,
    shows progress and resumes. ``workers == 1`` with loky runs in this process. ``address``
    (or its environment variable, :func:`cluster_address`) names a dask or ray cluster;
    ``workers`` None there means the cluster's cores.
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
            mpath = journal.model(index[key])
            t = tasks[index[key]]
            if t.keep_model and model is not None and t.cfg.engine == "numpy" and not rec.get("error"):
                model.save(mpath)  # a cluster run's model came back in memory: kept here for a resume
            journal.append(rec)
            if t.keep_model and model is None and mpath.exists():
                model = nn.load(mpath)
        if model is not None:
            models[key] = model
        done[key] = rec

    address = cluster_address(backend_name, address)
    if workers is None and not address:
        workers = _validate.usable_cores()
    if workers is not None:
        workers = max(1, min(int(workers), len(todo) or 1))
    in_process = backend_name == "loky" and workers == 1
    bar = progress_bar(console, quiet)

    def title(n: int) -> str:
        where_ = "" if backend_name == "loky" else f"{backend_name}, "
        return f"{description} ({where_}{n} worker{'s' if n > 1 else ''})"

    try:
        with bar:
            task_id = bar.add_task(title(workers or 1), total=total,
                                   completed=sum(tasks[index[k]].epochs for k in done))
            if in_process:
                for t in todo:
                    ckpt, mpath = paths(t)
                    before = bar.tasks[0].completed
                    rec = _work(t, ckpt, mpath, checkpoint_every, on_epoch=lambda: bar.advance(task_id))
                    bar.update(task_id, completed=before + t.epochs)
                    finished(rec)
            elif todo:
                with backend(backend_name, workers, address, where) as (records, n):
                    bar.update(task_id, description=title(n))
                    for rec in records(todo, paths, checkpoint_every):
                        finished(rec)  # the parent alone writes, as each run finishes
                        bar.advance(task_id, tasks[index[rec["key"]]].epochs)
    except KeyboardInterrupt:
        if journal is not None:
            note(f"interrupted: {len(done)} of {len(tasks)} runs are kept in {journal.runs}; rerun the same "
                 "command to continue")
        raise
    return Ran([done[t.key] for t in tasks], models, reused)
