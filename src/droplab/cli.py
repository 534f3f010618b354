"""The ``droplab`` command: one entry point, one module per subcommand.

Each subcommand lives in ``droplab.lab.<name>`` and provides ``HELP`` (one line),
``configure(parser)`` (its flags) and ``run(args) -> int``. Modules are imported only when
their subcommand runs or its help is built, so ``droplab --help`` stays free of numba.
Every error a user can cause (a bad flag or file, droplab's own errors, an OSError such as a
read-only or full disk, running out of memory) becomes one line on stderr and exit status 2;
``--debug`` shows the traceback instead. Ctrl-C exits with 130.

Run as the program (no ``argv``), the collector is frozen at exit: the interpreter's own teardown
then frees what it frees without its collection passes over numba's, matplotlib's and scipy's
objects (a quarter to half a second of every command); the OS frees the rest, and Python never
promises finalizers at exit.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import gc
import importlib
import os
import re
import sys
from collections.abc import Sequence

from droplab import __version__
from droplab.errors import DroplabError

# name -> (module, one-line help). The help is kept here so the top-level --help imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("droplab.lab.compare", "same network with and without dropout, over several seeds"),
    "uncertainty": ("droplab.lab.uncertainty", "MC dropout predictive uncertainty, calibration and OOD detection"),
    "sweep": ("droplab.lab.sweep", "a grid of p (and other knobs) x seeds, in parallel, resumable"),
    "report": ("droplab.lab.report", "one self-contained HTML page with every table and plot of a results folder"),
    "ensemble": ("droplab.lab.ensemble", "weight scaling vs MC averaging vs the exact average over all 2^n sub-networks"),
    "study": ("droplab.lab.study", "canned experiments: which p, where, BatchNorm order, cost, textbook, bug gallery"),
    "bench": ("droplab.lab.bench", "speed and memory against baselines measured in the same run"),
    "doctor": ("droplab.doctor.command", "find the dropout bugs in your own code: an implementation or a model"),
}


class UsageError(ValueError):
    """A bad command-line value (reported like any other bad input: one line, exit 2)."""


def _common(parser: argparse.ArgumentParser, default_out: str, module) -> None:
    from droplab import _validate  # here, not at the top: the top-level --help imports no NumPy

    g = parser.add_argument_group("common options")
    if getattr(module, "SEEDED", True):  # `report` draws nothing at random: no --seed
        g.add_argument("--seed", type=_validate.flag_type("seed"), default=0,
                       help=f"first seed of the experiment; run i of an arm uses seed + i "
                            f"({_validate.bounds_help('seed')})")
    g.add_argument("--out", default=default_out, help=getattr(module, "OUT_HELP", "results folder"))
    g.add_argument("--force", action="store_true", help="write into an --out holding other files (deletes none)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    g.add_argument("--debug", action="store_true", help="show tracebacks on errors")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        # A bounded flag's message names the flag itself; drop argparse's "argument --x: " before it.
        message = re.sub(r"^argument [^:]+: (?=`-)", "", message)
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that subcommand's module is imported."""
    parser = _Parser(
        prog="droplab",
        description="droplab: train with dropout, understand it, measure it. "
        "p is always the probability of DROPPING a unit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"droplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (modname, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == only:
            module = importlib.import_module(modname)
            module.configure(p)
            _common(p, default_out=f"results/{name}", module=module)
            p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``droplab`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    if argv is None:  # the program itself (console script, python -m droplab): see the module's docstring
        atexit.register(gc.freeze)  # before the command registers anything: it runs after their exit handlers
    argv = list(sys.argv[1:] if argv is None else argv)
    only = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code = int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"droplab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line; --debug shows the traceback
        if args.debug:
            raise
        text, code = describe(exc, out=getattr(args, "out", None))
        print(f"droplab {args.command}: error: {text}", file=sys.stderr)
        return code
    # deprecated spellings are noted once the command has succeeded (an error stays one line)
    for note in getattr(args, "_deprecated", ()) if code == 0 else ():
        print(f"droplab {args.command}: note: {note}", file=sys.stderr)
    return code


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


# errors a user causes with what they typed or the machine they run on: exit status 2
_USER_ERRORS = (ValueError, TypeError, FloatingPointError, EOFError)


def _is_temporary(path: str) -> bool:
    # droplab's own scratch names (".<name>.droplab-tmp-*", ".<out>.tmp-*", ".droplab-work"): never shown
    return any(part.startswith(".") and ("tmp" in part or part.endswith("work")) for part in
               os.path.normpath(path).split(os.sep))


def _os_error(exc: OSError, out: str | None) -> str:
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    path = exc.filename
    if path is not None:
        path = os.fsdecode(path)
        if _is_temporary(path) and out is not None:
            return f"cannot write --out {out!r}: {reason}"
        if out is not None and os.path.abspath(path).startswith(os.path.abspath(out).rstrip(os.sep) + os.sep):
            return f"cannot write {path!r} in --out {out!r}: {reason}"
        if out is not None and os.path.abspath(path) == os.path.abspath(out):
            return f"cannot use --out {out!r}: {reason}"
        return f"{path!r}: {reason}"
    if out is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
        return f"cannot write --out {out!r}: {reason}"
    return reason


def describe(exc: BaseException, out: str | None = None) -> tuple[str, int]:
    """The one line (without the command prefix) and the exit status for an error.

    droplab's own errors and bad input are printed as they are; an OSError names the path
    (a temporary file as the ``--out`` folder it belongs to); MemoryError, OverflowError and
    RecursionError say what ran out. Anything else is a bug: exit status 1 and a pointer to
    ``--debug``.
    """
    if isinstance(exc, DroplabError):
        # the message itself: an OSError subclass given errno and filename would prefix "[Errno n]"
        return _one_line(exc.args[0] if len(exc.args) == 1 else exc), 2
    if isinstance(exc, MemoryError):
        detail = f": {exc}" if str(exc) else ""
        return _one_line(f"out of memory{detail}; try smaller sizes (flags or data)"), 2
    if isinstance(exc, OverflowError):
        return _one_line(f"a number is too large: {exc}"), 2
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply (maximum recursion depth exceeded)", 2
    if isinstance(exc, OSError):
        return _one_line(_os_error(exc, out)), 2
    if isinstance(exc, _USER_ERRORS):
        return _one_line(exc), 2
    return _one_line(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback "
                     "and please report it"), 1


if __name__ == "__main__":
    sys.exit(main())
