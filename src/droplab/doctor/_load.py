"""``PATH_OR_MODULE:NAME``: load the user's object, or one line saying why it cannot be (exit 2)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from droplab import _validate
from droplab.errors import InvalidValueError

__all__ = ["load", "DoctorLoadError"]


class DoctorLoadError(InvalidValueError):
    """The target cannot be loaded at all (a missing file, a module that fails to import, no
    such name): an error (exit status 2), not a finding."""


def _error(flag: str, target: str, allowed: str, hint: str) -> DoctorLoadError:
    return DoctorLoadError(_validate.message("doctor", flag, allowed, target, hint))


def load(target: str, flag: str = "target") -> Any:
    """The object named by ``target``: ``path/to/file.py:NAME`` or ``package.module:NAME``
    (``NAME`` may be dotted: ``module:Class.attr``).

    A file is imported under a private module name with its folder first on ``sys.path`` (so
    its sibling imports work), and ``sys.path`` is restored afterwards.
    """
    text = str(target)
    if ":" not in text or text.endswith(":") or text.startswith(":"):
        raise _error(flag, text, "PATH_OR_MODULE:NAME", "E.g. my_dropout.py:Layer_Dropout or mypkg.layers:Dropout.")
    where, name = text.rsplit(":", 1)
    is_file = where.endswith(".py") or os.sep in where or "/" in where
    if is_file:
        path = Path(where)
        if not path.is_file():
            raise _error(flag, text, "an existing Python file and a name in it", f"{where} is not a file.")
        mod_name = f"_droplab_doctor_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        saved = list(sys.path)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 - code that cannot be loaded is an error, not a finding
            sys.modules.pop(mod_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _error(flag, text, "a file Python can import",
                         f"Importing {where} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        finally:
            sys.path[:] = saved
    else:
        try:
            module = importlib.import_module(where)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _error(flag, text, "an importable module and a name in it",
                         f"Importing {where} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    obj: Any = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = sorted(n for n in vars(module) if not n.startswith("_"))[:12]
            raise _error(flag, text, f"a name defined in {where}",
                         f"{where} has no {name!r}; it defines: {', '.join(names) or 'nothing public'}.") from None
    return obj
