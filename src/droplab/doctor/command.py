"""``droplab doctor``: find the dropout bugs in a user's own code (the CLI subcommand).

``droplab doctor impl PATH_OR_MODULE:NAME`` tests an implementation (a function ``f(x, p[,
training])``, a PyTorch module class taking ``p``, an NNFS-style NumPy layer class) against
dropout's contract; ``droplab doctor model PATH_OR_MODULE:FACTORY --input-shape 4,8`` examines
a PyTorch or ``droplab.nn`` model (``FACTORY`` is a function or class returning the model, or
``(model, example_input)``). Findings go to stdout, one line each, most severe first, with a
table of the measurements; ``--out`` gets ``results.json`` (findings and measurements) for
``droplab report``. Exit status: 0 clean, 1 findings, 2 an error (a target that cannot be
loaded, a bad flag). ``p`` is always the probability of DROPPING a unit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "find the dropout bugs in your own code: an implementation (impl) or a model (model)"
WHERE = "doctor"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", choices=("impl", "model"),
                        help="impl: test a dropout implementation; model: examine a PyTorch or droplab.nn model")
    parser.add_argument("target", metavar="PATH_OR_MODULE:NAME",
                        help="file.py:NAME or package.module:NAME (impl: a function f(x, p[, training]), a torch "
                             "module class taking p, or a NumPy layer class with forward/backward; model: a factory "
                             "returning the model or (model, example_input))")
    g = parser.add_argument_group("impl")
    g.add_argument("--p-means", choices=("drop", "keep"), default="drop",
                   help="what the code's p argument means: the doctor passes p (drop) or 1 - p (keep)")
    g.add_argument("--spec", default=None, metavar="VARIANT",
                   help="hold the code to this registered variant (e.g. dropout2d) instead of Dropout's contract")
    g = parser.add_argument_group("model")
    g.add_argument("--input-shape", default=None, metavar="N,...",
                   help="example input shape, comma-separated, batch first (e.g. 4,8); a standard-normal float32 "
                        "input is drawn with --seed. Not needed when FACTORY returns (model, example_input)")
    g.add_argument("--mc", default=None, metavar="PATH_OR_MODULE:NAME",
                   help="your MC-dropout function, called as fn(model, example_input): checked for BatchNorm left "
                        "in training mode and for dropout never switched on")
    parser.epilog = ("Exit status: 0 no findings, 1 findings, 2 error. Findings are printed one per line: what is "
                     "wrong, measured against expected, and the fix.")


def _shape(text: str) -> tuple[int, ...]:
    from droplab import _validate
    from droplab.errors import InvalidValueError

    try:
        dims = tuple(int(t) for t in str(text).replace(" ", "").split(",") if t != "")
    except ValueError:
        dims = ()
    if not dims or any(d < 1 or d > 1 << 20 for d in dims) or len(dims) > 6 or _prod(dims) > 1 << 24:
        raise InvalidValueError(_validate.message(WHERE, "input_shape", "comma-separated sizes, batch first, each "
                                                  "1 to 2^20, at most 6 axes and 2^24 elements", text,
                                                  "E.g. --input-shape 4,8 or 4,3,32,32."))
    return dims


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _usage(name: str, allowed: str, value: Any, hint: str = ""):
    from droplab import _validate
    from droplab.errors import InvalidValueError

    return InvalidValueError(_validate.message(WHERE, name, allowed, value, hint or None))


def _model_and_input(args, seed: int):
    """Call the factory; returns ``(model, example_input, engine)``; errors exit 2."""
    from droplab.doctor._load import DoctorLoadError, load

    factory = load(args.target)
    made = factory
    if callable(factory) and not _is_model(factory):
        try:
            made = factory()
        except Exception as exc:  # noqa: BLE001 - a factory that cannot build the model: nothing to examine
            raise DoctorLoadError(f"doctor: FACTORY {args.target} raised {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:200]}") from None
    model, example = (made if isinstance(made, tuple) and len(made) == 2 else (made, None))
    if not _is_model(model):
        raise _usage("target", "a factory returning a torch.nn.Module or droplab.nn Module (or (model, example_input))",
                     args.target, f"It returned {type(model).__name__}.")
    torch_model = _is_torch(model)
    if args.input_shape is not None:
        shape = _shape(args.input_shape)
        if torch_model:
            import torch

            gen = torch.Generator().manual_seed(seed)
            example = torch.randn(shape, generator=gen)
        else:
            import numpy as np

            example = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if example is None:
        raise _usage("input_shape", "the example input's shape (e.g. 4,8)", None,
                     "Pass --input-shape, or make FACTORY return (model, example_input).")
    return model, example, torch_model


def _is_torch(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_model(obj) -> bool:
    from droplab.nn.module import Module

    return _is_torch(obj) or isinstance(obj, Module)


def examine(args) -> tuple[Any, dict]:
    """Run the doctor as the flags say; returns ``(report, config)``."""
    from droplab import doctor
    from droplab.doctor._load import load

    seed = int(args.seed)
    config = {"mode": args.mode, "target": args.target, "seed": seed}
    if args.mode == "impl":
        for flag, value in (("input_shape", args.input_shape), ("mc", args.mc)):
            if value is not None:
                raise _usage(flag, "unset with `doctor impl`", value, "It applies to `doctor model`.")
        if args.spec is not None:
            from droplab.doctor._specs import check_spec_name

            check_spec_name(args.spec)
        obj = load(args.target)
        config.update({"p_means": args.p_means, "spec": args.spec})
        return doctor.check_impl(obj, p_means=args.p_means, spec=args.spec, seed=seed, name=args.target), config
    if args.p_means != "drop" or args.spec is not None:
        raise _usage("p_means" if args.p_means != "drop" else "spec", "unset with `doctor model`",
                     args.p_means if args.p_means != "drop" else args.spec, "It applies to `doctor impl`.")
    mc_fn = load(args.mc, "mc") if args.mc is not None else None
    model, example, torch_model = _model_and_input(args, seed)
    config.update({"input_shape": args.input_shape, "mc": args.mc, "engine": "torch" if torch_model else "numpy"})
    check = doctor.check_torch_model if torch_model else doctor.check_model
    return check(model, example, mc_fn=mc_fn, seed=seed, name=args.target), config


def table_of(report) -> dict:
    """The measurements as a lab table (80 columns: a long label wraps, nothing else does)."""
    from droplab.lab import tables

    rows = []
    for c in report.checks:
        label = c["check"] if c["where"] in ("model", "all calls") else f"{c['check']} ({c['where']})"
        rows.append([label, _cell(c["measured"]), _cell(c["expected"]), "yes" if c["ok"] else "NO"])
    note = ("expected a ± b: b is the 5-sigma bound from the number of independent draws"
            if any("±" in r[2] for r in rows) else "")
    return tables.table(f"droplab doctor {report.mode}: {len(rows)} checks", ["check", "measured", "expected", "ok"],
                        rows, note=note)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def reading_of(report) -> list[str]:
    from droplab.doctor._stats import TAIL

    bad = [f for f in report.findings if f.severity != "note"]
    if not bad:
        head = (f"No findings on {report.subject}: every check passed" +
                (f", including {report.tests} statistical tests at 5 sigma (a correct implementation fails one with "
                 f"probability {TAIL:.1e}; all {report.tests}: at most {report.tests * TAIL:.1e})."
                 if report.tests else "."))
    else:
        errors = sum(f.severity == "error" for f in bad)
        head = (f"{len(bad)} finding(s) on {report.subject} ({errors} error(s), {len(bad) - errors} warning(s)), most "
                "severe first:")
    return [head] + report.lines()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from droplab.lab import tables
    from droplab.lab._results import check_out, done_line, force_flag, results_dir, write_results

    check_out(args.out, WHERE, force=force_flag(args))  # a bad --out fails before any work
    report, config = examine(args)
    table = table_of(report)
    reading = reading_of(report)
    with results_dir(args.out, WHERE, force=force_flag(args)) as tmp:
        doc = report.to_dict()
        write_results(tmp, WHERE, config=config, runs=[], summary=doc["findings"], tables=[table], reading=reading,
                      findings=doc["findings"], measurements=doc["checks"], statistical_tests=doc["statistical_tests"],
                      false_alarm_per_test=doc["false_alarm_per_test"], false_alarm_bound=doc["false_alarm_bound"],
                      notes=doc["notes"], exit_status=report.exit_code)
    console = Console(quiet=args.quiet)
    tables.show(console, table)
    for line in report.notes:
        console.print(f"note: {line}", style="dim", highlight=False, markup=False)
    out = Console()  # findings reach stdout even with --quiet: they are the result
    for line in reading:  # one finding per paragraph, wrapped to the terminal like every lab output
        out.print(line, highlight=False, markup=False, overflow="fold")
    done_line(console, args.out, ["results.json"])
    return report.exit_code
