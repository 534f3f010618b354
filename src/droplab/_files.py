"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from droplab.errors import FileError

__all__ = ["atomic_open", "TEMP_INFIX"]

TEMP_INFIX = ".droplab-tmp-"  # temporary names are ".<name>.droplab-tmp-XXXX": droplab's, never a user's


def _error(where: str, name: str, path: Path, exc: OSError) -> FileError:
    from droplab._validate import message

    reason = exc.strerror or str(exc) or type(exc).__name__
    if path.is_dir():
        reason = "it is a folder"
    err = FileError(message(where, name, "a file path droplab can write", str(path), f"Writing failed: {reason}."))
    err.errno = exc.errno
    err.filename = str(path)  # the file asked for, never the temporary name
    return err


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None,
                where: str = "write", name: str = "path") -> Iterator[IO]:
    """Open a temporary file beside ``path``; when the block ends without error it is flushed,
    fsynced, given ordinary permissions (0666 less the umask) and renamed over ``path``, and the
    folder is fsynced so the rename itself is durable. On error the temporary file is removed.

    Raises:
        FileError: (an OSError) naming ``path`` (never the temporary name) when the folder
            cannot be made or written, the disk is full, or ``path`` is a folder. ``where``
            and ``name`` start its message.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}{TEMP_INFIX}", dir=path.parent)
    except FileError:
        raise
    except OSError as exc:
        raise _error(where, name, path, exc) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileError) and \
                (exc.filename is None or os.fsdecode(exc.filename) in (tmp, str(path))):
            raise _error(where, name, path, exc) from None
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
