"""Results folders: safe by construction.

A command writes into ``--out`` only when the folder does not exist, is empty, or holds
results of the same command (recognised by droplab's manifest ``.droplab.json``, or by the
``command`` of its ``results.json``). There it replaces only its own files and never deletes
anything else. Any other folder is refused with one line naming ``--force``; ``--force``
writes droplab's files beside whatever is there (a file with the very name of one droplab
writes is replaced) and deletes nothing.

Everything temporary lives inside ``--out``: the new files are written whole in
``--out/.droplab-tmp/`` and then switched in, each file atomically (``results.json`` last), so
an error or a kill never leaves half a file or a stray folder in the parent. A stale
``.droplab-tmp`` left by a killed run is removed by the next command there. Resume state (a
``compare`` work folder) lives in ``--out/.droplab-work/``.

One advisory lock per folder (``flock`` on the folder itself: the OS releases it when the
process dies, even by ``kill -9``) covers every command: a second droplab command on the same
``--out`` exits at once with one line.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "res"
    >>> with results_dir(out, "demo") as tmp:
    ...     write_json(tmp / "results.json", {"command": "demo"})
    >>> sorted(p.name for p in out.iterdir())
    ['.droplab.json', 'results.json']
    >>> (out / "notes.txt").write_text("mine") and None
    >>> with results_dir(out, "demo") as tmp:  # the same command again: replaces its own files only
    ...     write_json(tmp / "results.json", {"command": "demo", "n": 2})
    >>> (out / "notes.txt").read_text()
    'mine'
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from droplab import _validate
from droplab._files import TEMP_INFIX, atomic_open
from droplab.errors import FileError, InvalidTypeError, InvalidValueError

__all__ = ["results_dir", "write_json", "write_results", "done_line", "versions", "check_out", "lock", "owner",
           "force_flag", "file_error",
           "remove_stale", "write_manifest", "TMP", "WORK", "MANIFEST"]

TMP = ".droplab-tmp"  # staging area of the command holding the lock; stale after a kill
WORK = ".droplab-work"  # resume state (compare); kept until the results are in place
MANIFEST = ".droplab.json"  # {"command": ..., "files": [...]}: which files of the folder droplab wrote
_HIDDEN = (TMP, WORK, MANIFEST)

# distribution names, read with importlib.metadata (not from whatever happens to be imported)
_PACKAGES = ("numpy", "numba", "scikit-learn", "scipy", "torch", "matplotlib", "rich", "joblib")


def versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of droplab, Python and every installed numerical library droplab can use.

    Read from the installed distributions' metadata, so the record does not depend on which
    modules a command happened to import. ``extra`` names more distributions to include.
    """
    from importlib import metadata

    from droplab import __version__

    out = {"droplab": __version__, "python": platform.python_version()}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise InvalidTypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (temp file, fsync, rename); NaN and infinity are refused (strict JSON)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_default, allow_nan=False)
        f.write("\n")


def force_flag(args: Any) -> bool:
    """``--force`` of a parsed command line (False where the flag is absent)."""
    return bool(getattr(args, "force", False))


# ---------------------------------------------------------------------------------------------
# checks


def out_path(out: str | os.PathLike | None, command: str) -> Path:
    """``--out`` as a Path, refused with one line when it names no folder ('', '.', '..', '/')."""
    text = "" if out is None else os.fspath(out)
    path = Path(text)
    if not text.strip() or path.name in ("", ".", ".."):
        raise InvalidValueError(_validate.message(
            command, "out", "the name of a results folder", text,
            f"Name one, e.g. --out results/{command} (--out '.', '..', '/' or '' name no folder of its own)."))
    if "\0" in text:
        raise InvalidValueError(_validate.message(command, "out", "a path without NUL characters", text))
    return path


def file_error(command: str, path: str | os.PathLike, exc: OSError, *, flag: str = "--out") -> FileError:
    """A one-line :class:`FileError` for an OSError met while writing ``path`` (given by ``flag``)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hints = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
             errno.EACCES: "permission denied", errno.EPERM: "permission denied",
             errno.ENAMETOOLONG: "the name is too long"}
    if exc.errno in hints:
        reason = hints[exc.errno]
    err = FileError(_validate.message(command, flag.lstrip("-").replace("-", "_"), "a folder droplab can write to",
                                      str(path), f"Writing there failed: {reason} ({flag})."))
    err.errno = exc.errno
    err.filename = str(path)
    return err


def _manifest(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("command"), str):
        return None
    files = doc.get("files")
    doc["files"] = [f for f in files if isinstance(f, str) and "/" not in f and f not in ("", ".", "..")] \
        if isinstance(files, list) else []
    return doc


def _command_of(path: Path) -> str | None:
    try:
        if path.stat().st_size > 64 << 20:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    cmd = doc.get("command") if isinstance(doc, dict) else None
    return cmd if isinstance(cmd, str) else None


def owner(out: str | os.PathLike) -> str | None:
    """The droplab command whose results the folder ``out`` holds, or None."""
    out = Path(out)
    man = _manifest(out)
    if man is not None:
        return man["command"]
    for name in ("results.json", "sweep.json"):  # folders written before the manifest existed
        cmd = _command_of(out / name)
        if cmd is not None:
            return cmd
    return None


def _others(out: Path) -> list[str]:
    """Names in ``out`` besides droplab's own hidden state."""
    return sorted(p for p in os.listdir(out) if p not in _HIDDEN and TEMP_INFIX not in p)


def remove_stale(out: Path) -> None:
    """Remove what a killed command left in ``out`` (call with the lock held): the staging area
    and atomic writes cut short (``.<name>.droplab-tmp-*``)."""
    _remove_tree(out / TMP)
    for name in os.listdir(out):
        if name.startswith(".") and TEMP_INFIX in name:
            with contextlib.suppress(OSError):
                (out / name).unlink()


def check_out(out: str | os.PathLike | None, command: str, *, force: bool = False,
              accept: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an ``--out`` this command may not write to, before any work.

    Allowed: a missing folder, an empty one (droplab's hidden state aside), one holding results
    of ``command`` (or, with ``accept``, one it accepts), or any folder with ``force``. Raises
    the one-line errors of the CLI.
    """
    path = out_path(out, command)
    try:
        if path.exists() and not path.is_dir():
            raise InvalidValueError(_validate.message(command, "out", "a folder", str(path),
                                                      "It is a file; pick another --out."))
        if not path.is_dir():
            return path
        others = _others(path)
    except OSError as exc:
        raise file_error(command, path, exc) from None
    if not others:
        return path
    found = owner(path)
    if force and accept is None:
        if found is not None and found != command:  # --force never mixes two commands' results
            raise InvalidValueError(_validate.message(
                command, "out", "a folder without another command's results (even with --force)", str(path),
                f"It holds {found} results, which {command} would break; pick another --out."))
        _refuse_collisions(path, command, ["results.json"])
        return path
    if force or (accept(path) if accept is not None else found == command):
        return path
    _refuse_if_busy(path, command)  # "another command is writing there" says more than "it holds ..."
    what = f"{found} results" if found else ", ".join(others[:3]) + ("..." if len(others) > 3 else "")
    raise InvalidValueError(_validate.message(
        command, "out", f"a new or empty folder, or one holding {'droplab' if accept else command} results", str(path),
        f"It holds {what}; rerun with --force to add droplab's files there (nothing of yours is deleted), "
        "or pick another --out."))


def _busy_error(out: Path, command: str) -> InvalidValueError:
    return InvalidValueError(_validate.message(
        command, "out", "a folder no other droplab command is writing to", str(out),
        "Wait for it to finish, or pick another --out."))


def _refuse_if_busy(out: Path, command: str) -> None:
    with lock(out, command):
        pass


@contextlib.contextmanager
def lock(out: Path, command: str) -> Iterator[None]:
    """Hold the folder's advisory lock, or refuse at once with one line if another command does."""
    try:
        import fcntl
    except ModuleNotFoundError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError as exc:
        raise file_error(command, out, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy_error(out, command) from None
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# the results folder


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(out: Path, command: str, files: Iterable[str]) -> None:
    """Record (atomically) that ``files`` of ``out`` are ``command``'s own."""
    write_json(out / MANIFEST, {"command": command, "files": sorted(set(files)),
                                "note": "written by droplab: the files it may replace here"})


def _collisions(out: Path, command: str, names: Iterable[str]) -> list[str]:
    """Names in ``names`` that exist in ``out`` but are not this command's own files."""
    man = _manifest(out)
    if man is None and owner(out) == command:  # this command's folder from before the manifest
        return []
    own = set(man["files"]) if man is not None and man["command"] == command else set()
    return [n for n in names if n not in own and os.path.lexists(out / n)]


def _refuse_collisions(out: Path, command: str, names: Iterable[str]) -> None:
    clash = _collisions(out, command, names)
    if clash:
        raise InvalidValueError(_validate.message(
            command, "out", "a folder whose files of droplab's names are droplab's own", str(out),
            f"{clash[0]!r} there was not written by droplab {command}, and --force never replaces your "
            "files; move it or pick another --out."))


def _switch(out: Path, stage: Path, command: str) -> None:
    """Move the staged files into ``out``, each atomically, ``results.json`` last; remove this
    command's old files that the new set lacks; touch nothing else (a user's file that bears
    the name of a new one is refused before anything moves)."""
    new = sorted(p.name for p in stage.iterdir())
    _refuse_collisions(out, command, new)
    new.sort(key=lambda n: n == "results.json")
    man = _manifest(out)
    old = set(man["files"]) if man is not None and man["command"] == command else set()
    write_manifest(out, command, old | set(new))  # a kill mid-switch leaves every file accounted for
    if "results.json" in new and "results.json" in old:
        with contextlib.suppress(FileNotFoundError):  # no stale results.json beside new plots
            (out / "results.json").unlink()
    for name in new:
        os.replace(stage / name, out / name)
    for name in sorted(old - set(new)):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            (out / name).unlink()
    write_manifest(out, command, new)
    _fsync_dir(out)


def _from_stage(exc: OSError, out: Path, stage: Path) -> Path | None:
    """The results-folder path an OSError was about (staging names mapped to their final names)."""
    name = getattr(exc, "filename", None)
    if name is None:
        return out if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else None
    name = Path(os.fsdecode(name))
    for root in (stage, out):
        with contextlib.suppress(ValueError):
            rel = name.relative_to(root)
            first = rel.parts[0] if rel.parts else ""
            return out / first if root == stage and first else out
    return None


@contextlib.contextmanager
def results_dir(out: str | os.PathLike, command: str, *, force: bool = False) -> Iterator[Path]:
    """Lock ``out``, check it may be written (see :func:`check_out`) and yield an empty staging
    folder inside it; when the block succeeds the staged files are switched into ``out``.

    On any error the staging folder is removed, ``out`` keeps what it held, and a folder this
    call created is removed again if nothing else was put in it.
    """
    path = check_out(out, command, force=force)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(command, path, exc) from None
    stage = path / TMP / f"stage-{os.getpid()}"
    try:
        with lock(path, command):
            check_out(path, command, force=force)  # again, now that no other command can change it
            try:
                remove_stale(path)  # whoever wrote it no longer holds the lock
                stage.mkdir(parents=True)
            except OSError as exc:
                raise file_error(command, path, exc) from None
            try:
                yield stage
                _switch(path, stage, command)
            except OSError as exc:
                where = None if isinstance(exc, FileError) and "--" in str(exc) else _from_stage(exc, path, stage)
                if where is None:
                    raise
                raise file_error(command, where, exc) from None
            finally:
                _remove_tree(path / TMP)
    finally:
        if created:
            with contextlib.suppress(OSError):
                if not os.listdir(path):
                    path.rmdir()


# ---------------------------------------------------------------------------------------------
# the one results writer


def write_results(stage: Path, command: str, *, config: dict[str, Any], runs: list, summary: Any,
                  tables: list[dict] | None = None, reading: list[str] | None = None, **extra: Any) -> dict:
    """Write ``results.json`` into ``stage`` with the keys every command shares, in one order:
    ``command``, ``config``, ``versions``, ``runs``, ``summary``, ``tables`` (what the terminal
    printed, rendered again by the report), ``reading``, then the command's own keys."""
    doc = {"command": command, "config": config, "versions": versions(extra.pop("version_extra", ())),
           "runs": runs, "summary": summary, "tables": tables or [], "reading": reading or [], **extra}
    write_json(Path(stage) / "results.json", doc)
    return doc


def done_line(console, out: str | os.PathLike, files: Iterable[str]) -> None:
    """The last line every command prints: where its results are."""
    # wrapped (a long path folded) so that it fits the terminal like everything else
    console.print(f"results written to {os.fspath(out).rstrip(os.sep)}/ ({', '.join(files)})", overflow="fold",
                  markup=False, highlight=False)
