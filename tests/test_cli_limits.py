"""Command-line bounds and one line for every error (issue 13).

Every numeric flag of every command has a maximum, shown in --help, and a value outside its
range is refused at parse time: exit status 2, exactly one stderr line naming the flag, and
nothing written to --out. Every error a user can cause (OSError, MemoryError, OverflowError,
RecursionError, droplab's own errors) is one line and exit 2; a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import subprocess
import sys

import pytest

from droplab import _validate, cli
from droplab.cli import main
from droplab.errors import FileError, InvalidValueError

HUGE = str(10**30)
CORES = _validate.usable_cores()

# (command, flag, kind, lo, hi): kind "int" or "float"; hi None = any finite float. Written out
# here, independently of droplab's own table, so a changed bound shows up as a failing test.
FLAGS = [
    *[(cmd, "--seed", "int", 0, 2**32 - 1) for cmd in cli.COMMANDS if cmd != "report"],  # report: no --seed
    ("compare", "--p", "float", 0, 1), ("compare", "--input-p", "float", 0, 1),
    ("compare", "--epochs", "int", 1, 100_000), ("compare", "--batch-size", "int", 0, 1_000_000),
    ("compare", "--lr", "float", 0, None), ("compare", "--l2", "float", 0, 1e6),
    ("compare", "--max-norm", "float", 0, 1e6), ("compare", "--seeds", "int", 1, 1000),
    ("compare", "--checkpoint-every", "int", 1, 100_000),
    ("uncertainty", "--p", "float", 0, 1), ("uncertainty", "--input-p", "float", 0, 1),
    ("uncertainty", "--epochs", "int", 1, 100_000), ("uncertainty", "--batch-size", "int", 0, 1_000_000),
    ("uncertainty", "--lr", "float", 0, None), ("uncertainty", "--l2", "float", 0, 1e6),
    ("uncertainty", "--bins", "int", 1, 1000), ("uncertainty", "--ood-samples", "int", 1, 100_000),
    ("uncertainty", "--samples-list", "int", 1, 10_000),
    ("sweep", "--seeds", "int", 1, 1000), ("sweep", "--workers", "int", 1, CORES),
    ("ensemble", "--units", "int", 1, 16), ("ensemble", "--p", "float", 0, 1),
    ("ensemble", "--head-units", "int", 1, 8192), ("ensemble", "--epochs", "int", 1, 100_000),
    ("ensemble", "--batch-size", "int", 0, 1_000_000), ("ensemble", "--lr", "float", 0, None),
    ("ensemble", "--max-T", "int", 1, 10_000), ("ensemble", "--repeats", "int", 1, 1000),
    ("bench", "--repeats", "int", 0, 1000),
]
# flags whose lower bound is excluded (a learning rate of 0 trains nothing)
OPEN_LO = {"--lr"}


def _bad_values(kind, lo, hi, flag):
    """0, -1, 10**30, a float for an int, max + 1 and non-numbers: the ones outside the range."""
    # a learning rate is bounded only by being finite: 10**30 trains, and the run stops when its loss diverges
    out = ["-1", "nan", "inf", "abc", ""] + ([HUGE] if hi is not None else [])
    if kind == "int":
        out += ["1.5", "1e3", str(hi + 1)]
    elif hi is not None:
        out.append(repr(hi * 1.5 if hi else 1.0))
    if lo == 1 or flag in OPEN_LO:
        out.append("0")
    if flag == "--p" and kind == "float":
        out.append("1.0000001")
    return out


CASES = [(cmd, flag, v) for cmd, flag, kind, lo, hi in FLAGS for v in _bad_values(kind, lo, hi, flag)]
# the grid flags of sweep take lists; each value is bounded when the grid is built (before any file)
SWEEP_GRID = [("--epochs", HUGE), ("--epochs", "100001"), ("--epochs", "0"), ("--epochs", "1.5"),
              ("--batch-size", "-1"), ("--batch-size", "1000001"), ("--lr", "0"), ("--lr", "inf"),
              ("--l2", "1e7"), ("--l2", "-1"), ("--p", "1.5"), ("--input-p", "-0.1"),
              ("--hidden", "1000000000"), ("--hidden", "8193"), ("--hidden", "8192,8192,8192"),
              ("--hidden", ",".join(["4"] * 65)), ("--hidden", "0")]


def _argv(cmd, out, *extra):
    head = {"study": ["study", "where", "--tiny"], "report": ["report", str(out.parent / "nothing")]}
    return [*head.get(cmd, [cmd]), "--quiet", "--out", str(out), *extra]


def _one_line_exit_2(capsys, code, out):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("cmd,flag,value", CASES, ids=[f"{c}{f}={v[:12]}" for c, f, v in CASES])
def test_every_numeric_flag_refuses_values_outside_its_range(tmp_path, capsys, cmd, flag, value):
    out = tmp_path / "out"
    err = _one_line_exit_2(capsys, main(_argv(cmd, out, f"{flag}={value}")), out)
    assert err.startswith(f"droplab {cmd}: error: `{flag}` must be ")
    assert f"got {flag}=" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag,value", SWEEP_GRID)
def test_sweep_grid_values_are_bounded_before_anything_is_written(tmp_path, capsys, flag, value):
    out = tmp_path / "sw"
    err = _one_line_exit_2(capsys, main(["sweep", "--dataset", "spiral", "--quiet", "--out", str(out),
                                         f"{flag}={value}"]), out)
    assert "sweep" in err and "must be" in err


@pytest.mark.parametrize("cmd,flag,kind,lo,hi", FLAGS, ids=[f"{c}{f}" for c, f, *_ in FLAGS])
def test_help_shows_every_maximum(capsys, cmd, flag, kind, lo, hi):
    assert main([cmd, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    block = re.search(re.escape(flag) + r" [A-Z_0-9]+ (.*?)(?= --[a-z]|$)", text).group(1)
    if flag == "--workers":
        assert "usable cores" in block
    elif hi is None:
        assert "any finite number > 0" in block
    else:
        assert f"{hi:g}" in block or str(hi) in block, block


def test_no_command_has_an_unbounded_numeric_flag():
    for name in cli.COMMANDS:
        parser = cli.build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        for action in sub._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}: type={action.type}"


def test_workers_are_capped_at_the_usable_cores():
    parse = _validate.flag_type("workers")
    assert parse(str(CORES)) == CORES
    with pytest.raises(argparse.ArgumentTypeError, match=rf"`--workers` must be an integer in \[1, {CORES}\] "
                                                         rf"\(the usable cores\); got --workers={CORES + 1}\."):
        parse(str(CORES + 1))


# ------------------------------------------------------------------------ the cases


def test_sweep_workers_1000_on_a_one_run_grid_starts_nothing(tmp_path, capsys):
    import multiprocessing

    out = tmp_path / "sw"
    before = len(multiprocessing.active_children())
    err = _one_line_exit_2(capsys, main(["sweep", "--dataset", "spiral", "--p", "0", "--seeds", "1", "--epochs", "1",
                                         "--hidden", "4", "--workers", "1000", "--quiet", "--out", str(out)]), out)
    assert "droplab sweep: error: `--workers` must be an integer in [1, " in err and "got --workers=1000." in err
    assert len(multiprocessing.active_children()) == before


def test_sweep_workers_10_30_is_one_line_not_an_overflow_traceback(tmp_path, capsys):
    out = tmp_path / "sw"
    err = _one_line_exit_2(capsys, main(["sweep", "--workers", HUGE, "--out", str(out)]), out)
    assert "OverflowError" not in err and "`--workers`" in err


def test_sweep_seeds_10_30_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "sw"
    err = _one_line_exit_2(capsys, main(["sweep", "--seeds", HUGE, "--out", str(out)]), out)
    assert "`--seeds` must be an integer in [1, 1000]" in err


@pytest.mark.parametrize("cmd", ["compare", "uncertainty"])
def test_hidden_one_billion_is_one_line(tmp_path, capsys, cmd):
    out = tmp_path / "o"
    err = _one_line_exit_2(capsys, main([cmd, "--hidden", "1000000000", "--out", str(out)]), out)
    assert "`--hidden` must be comma-separated integers in [1, 8192]" in err


def test_hidden_width_times_depth_is_bounded(tmp_path, capsys):
    out = tmp_path / "o"
    err = _one_line_exit_2(capsys, main(["compare", "--hidden", "8192,8192,8192", "--out", str(out)]), out)
    assert "weights between consecutive layers" in err
    assert main(["compare", "--hidden", ",".join(["8"] * 65), "--out", str(out)]) == 2


def test_uncertainty_samples_list_one_billion_is_refused(tmp_path, capsys):
    out = tmp_path / "u"
    err = _one_line_exit_2(capsys, main(["uncertainty", "--samples-list", "1,1000000000", "--out", str(out)]), out)
    assert "`--samples-list` must be comma-separated integers in [1, 10000]" in err


def test_uncertainty_bins_10_30_names_the_flag(tmp_path, capsys):
    out = tmp_path / "u"
    err = _one_line_exit_2(capsys, main(["uncertainty", "--bins", HUGE, "--out", str(out)]), out)
    assert "Maximum allowed size" not in err and "`--bins` must be an integer in [1, 1000]" in err


def test_ensemble_seed_minus_1_names_the_seed(tmp_path, capsys):
    out = tmp_path / "e"
    err = _one_line_exit_2(capsys, main(["ensemble", "--seed", "-1", "--out", str(out)]), out)
    assert "`--seed` must be an integer in [0, 4294967295]" in err and "got --seed=-1." in err


@pytest.mark.parametrize("argv", [["compare", "--epochs", HUGE], ["ensemble", "--max-T", HUGE],
                                  ["bench", "--repeats", HUGE], ["uncertainty", "--epochs", HUGE]])
def test_runs_until_killed_cases_are_refused_at_once(tmp_path, argv):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "droplab.cli", *argv, "--quiet", "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"`{argv[1]}` must be an integer in" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--seed", "-1"], ["--workers", HUGE], ["--hidden", "1000000000"]])
def test_sweep_writes_no_sweep_json_before_its_flags_are_checked(tmp_path, capsys, flags):
    out = tmp_path / "sw"
    _one_line_exit_2(capsys, main(["sweep", "--dataset", "spiral", "--quiet", "--out", str(out), *flags]), out)


def test_sweep_total_runs_are_bounded(tmp_path, capsys):
    out = tmp_path / "sw"
    p = ",".join(f"{i / 200:g}" for i in range(101))
    err = _one_line_exit_2(capsys, main(["sweep", "--dataset", "spiral", "--p", p, "--lr", "0.1,0.2,0.3,0.4",
                                         "--seeds", "1000", "--quiet", "--out", str(out)]), out)
    assert "`runs` must be at most 100000 (grid points x seeds); got runs=404000." in err


def test_sweep_toml_values_are_bounded(tmp_path, capsys):
    cfg = tmp_path / "grid.toml"
    out = tmp_path / "sw"
    cfg.write_text(f"epochs = {10**18}\n")
    err = _one_line_exit_2(capsys, main(["sweep", "--config", str(cfg), "--quiet", "--out", str(out)]), out)
    assert "sweep (grid.toml): `epochs` must be an integer in [1, 100000]" in err
    cfg.write_text("seeds = 5000\n")
    err = _one_line_exit_2(capsys, main(["sweep", "--config", str(cfg), "--quiet", "--out", str(out)]), out)
    assert "`seeds` must be an integer in [1, 1000]" in err


def test_a_long_value_is_shortened_in_the_message(tmp_path, capsys):
    out = tmp_path / "o"
    err = _one_line_exit_2(capsys, main(["compare", "--epochs", "9" * 3000, "--out", str(out)]), out)
    assert len(err) < 200


def test_within_is_the_library_side_of_the_same_bound():
    assert _validate.within("sweep", "epochs", 5) == 5
    with pytest.raises(InvalidValueError, match=r"sweep: `epochs` must be an integer in \[1, 100000\]; got epochs=0"):
        _validate.within("sweep", "epochs", 0)
    with pytest.raises(TypeError, match=r"`epochs` must be an integer"):
        _validate.within("sweep", "epochs", 2.5)


# ---------------------------------------------------------------- one line for every error


class _Raise:
    """A stand-in command module whose run raises the given error."""

    def __init__(self, exc):
        self.exc = exc

    def run(self, args):
        raise self.exc


@pytest.fixture
def raising(monkeypatch):
    def use(exc):
        import droplab.lab.report as report

        monkeypatch.setattr(report, "run", _Raise(exc).run)
    return use


@pytest.mark.parametrize("exc,expected", [
    (MemoryError("Unable to allocate 29.8 GiB for an array"), "out of memory: Unable to allocate 29.8 GiB"),
    (MemoryError(), "out of memory; try smaller sizes"),
    (OverflowError("Python int too large to convert to C long"), "a number is too large: Python int too large"),
    (RecursionError("maximum recursion depth exceeded"), "the input is nested too deeply"),
    (OSError(errno.ENOSPC, "No space left on device"), "cannot write --out 'OUT': No space left on device"),
    (OSError(errno.EROFS, "Read-only file system", "OUT/results.json"),
     "cannot write 'OUT/results.json' in --out 'OUT': Read-only file system"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "OUT"), "cannot use --out 'OUT': File name too long"),
    (OSError(errno.ENOENT, "No such file or directory", "/some/input.txt"),
     "'/some/input.txt': No such file or directory"),
    (OSError(errno.EACCES, "Permission denied", "OUT/.results.json.droplab-tmp-x1y2"),
     "cannot write --out 'OUT': Permission denied"),
    (OSError(errno.EACCES, "Permission denied", "/x/.OUT.tmp-abc/results.json"),
     "cannot write --out 'OUT': Permission denied"),
    (ValueError("line one\nline two"), "line one line two"),
    (FloatingPointError("overflow encountered"), "overflow encountered"),
    (EOFError("Ran out of input"), "Ran out of input"),
])
def test_every_user_error_is_one_line_and_exit_2(tmp_path, capsys, raising, monkeypatch, exc, expected):
    monkeypatch.chdir(tmp_path)
    raising(exc)
    assert main(["report", "d", "--out", "OUT"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"droplab report: error: {expected}"), err
    assert err.count("\n") == 1 and "droplab-tmp" not in err and ".tmp-" not in err


def test_a_file_error_with_errno_and_filename_is_printed_as_its_message(capsys, raising):
    exc = FileError("write: `path` must be a file path droplab can write; got path='x'. Writing failed: full.")
    exc.errno, exc.filename = errno.ENOSPC, "x"  # as droplab._files sets them
    raising(exc)
    assert main(["report", "d"]) == 2
    err = capsys.readouterr().err
    assert err == "droplab report: error: write: `path` must be a file path droplab can write; got path='x'. " \
                  "Writing failed: full.\n"


def test_debug_shows_the_traceback(raising):
    raising(MemoryError("boom"))
    with pytest.raises(MemoryError):
        main(["report", "d", "--debug"])


def test_keyboard_interrupt_is_130(capsys, raising):
    raising(KeyboardInterrupt())
    assert main(["report", "d"]) == 130
    assert capsys.readouterr().err == "droplab report: interrupted\n"


def test_a_bug_is_one_line_exit_1_pointing_at_debug(capsys, raising):
    raising(KeyError("x"))
    assert main(["report", "d"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (KeyError" in err and "--debug" in err


@pytest.mark.parametrize("make_out", [
    lambda t: (t / "file").write_text("x") and t / "file" / "sub",  # a path under a regular file
    lambda t: t / ("n" * 300),  # a name too long for the file system
    lambda t: t / "a" / ("n" * 300) / "b",
])
def test_bad_out_paths_are_one_line(tmp_path, capsys, make_out):
    out = make_out(tmp_path)
    code = main(["compare", "--dataset", "spiral", "--epochs", "1", "--seeds", "1", "--hidden", "4",
                 "--batch-size", "0", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err


def test_out_in_proc_is_one_line(capsys):
    code = main(["compare", "--dataset", "spiral", "--epochs", "1", "--seeds", "1", "--hidden", "4",
                 "--batch-size", "0", "--quiet", "--out", "/proc/droplab-cannot-write-here"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err


@contextlib.contextmanager
def _tmpfs(path, options):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root in a container "
                    "that allows mounts")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("options,fill", [("size=64k", True), ("ro,size=64k", False)], ids=["full", "read-only"])
def test_full_and_read_only_disks_are_one_line(tmp_path, capsys, options, fill):
    with _tmpfs(tmp_path / "mnt", options) as mnt:
        if fill:
            with contextlib.suppress(OSError), open(mnt / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
        out = mnt / "results"
        code = main(["compare", "--dataset", "spiral", "--epochs", "1", "--seeds", "1", "--hidden", "4",
                     "--batch-size", "0", "--quiet", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert str(out) in err
        # no temporary file left behind (compare keeps its resume state in --out/.droplab-work on purpose)
        assert not [p for p in mnt.rglob("*") if "tmp" in p.name]


def test_uncertainty_model_file_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "m.npz"
    for blob in (b"", b"PK\x03\x04 not really a zip", b"\x80\x04pickle"):
        bad.write_bytes(blob)
        out = tmp_path / "u"
        code = main(["uncertainty", "--dataset", "spiral", "--model", str(bad), "--quiet", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert not out.exists()
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code = main(["uncertainty", "--dataset", "spiral", "--model", str(fifo), "--quiet", "--out", str(tmp_path / "u")])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
