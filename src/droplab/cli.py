"""The ``droplab`` command: one entry point, one module per subcommand.

Each subcommand lives in ``droplab.lab.<name>`` and provides ``HELP`` (one line),
``configure(parser)`` (its flags) and ``run(args) -> int``. Modules are imported only when
their subcommand runs or its help is built, so ``droplab --help`` stays free of numba.
Errors from bad input (``ValueError``/``TypeError``) become one line on stderr and exit
status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from droplab import __version__

# name -> (module, one-line help). The help is kept here so the top-level --help imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("droplab.lab.compare", "same network with and without dropout, over several seeds"),
    "uncertainty": ("droplab.lab.uncertainty", "MC dropout predictive uncertainty, calibration and OOD detection"),
    "sweep": ("droplab.lab.sweep", "a grid of p (and other knobs) x seeds, in parallel, resumable"),
    "report": ("droplab.lab.report", "one self-contained HTML page with every table and plot of a results folder"),
    "ensemble": ("droplab.lab.ensemble", "weight scaling vs MC averaging vs the exact average over all 2^n sub-networks"),
    "study": ("droplab.lab.study", "canned experiments: which p, where, BatchNorm order, cost, textbook, bug gallery"),
    "bench": ("droplab.lab.bench", "speed and memory against baselines measured in the same run"),
}


class UsageError(ValueError):
    """A bad command-line value (reported like any other bad input: one line, exit 2)."""


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--seed", type=int, default=0, help="master seed of the experiment")
    g.add_argument("--out", default=default_out, help="results folder")
    g.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    g.add_argument("--debug", action="store_true", help="show tracebacks on errors")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


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
            _common(p, default_out=f"results/{name}")
            p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``droplab`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
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
        return int(args._module.run(args) or 0)
    except (ValueError, TypeError, FloatingPointError) as exc:
        if args.debug:
            raise
        print(f"droplab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"droplab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
