"""Results folders: written whole or not at all.

A command writes into a hidden temporary folder beside ``out`` and renames it into place at
the end, so an error or Ctrl-C never leaves a half-written results folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from droplab._files import atomic_open

__all__ = ["results_dir", "write_json", "versions"]


def versions() -> dict[str, str]:
    """Versions of droplab, Python and the numerical libraries in use."""
    import numpy as np

    from droplab import __version__

    out = {"droplab": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("numba", "sklearn", "torch", "matplotlib"):
        mod = __import__("sys").modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def _default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_default, allow_nan=False)
        f.write("\n")


@contextlib.contextmanager
def results_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any error it is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: `out` must be a folder; got out={str(out)!r}, which is a file.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
