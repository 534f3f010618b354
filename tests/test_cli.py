"""The `droplab` command: in-process runs of main(argv), and one subprocess smoke test."""

import json
import subprocess
import sys

import pytest

from droplab.cli import main

SMALL = ["--dataset", "spiral", "--hidden", "16", "--epochs", "3", "--batch-size", "0", "--seeds", "2",
         "--lr", "0.05", "--quiet"]


def test_compare_writes_results_and_plots(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", *SMALL, "--out", str(out), "--p", "0.2"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "compare"
    assert {"droplab", "numpy"} <= set(res["versions"])
    assert len(res["runs"]) == 4 and {r["p"] for r in res["runs"]} == {0.0, 0.2}
    for r in res["runs"]:
        m = r["metrics"]
        assert 0 <= m["train_accuracy"] <= 1 and 0 <= m["val_accuracy"] <= 1
        assert set(r["history"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
        assert len(r["history"]["loss"]) == 3
    assert [s["arm"] for s in res["summary"]] == ["no dropout", "dropout p=0.2"]
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert (out / "decision_boundary.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_compare_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert main(["compare", *SMALL, "--out", str(tmp_path / name), "--seed", "3"]) == 0
        res = json.loads((tmp_path / name / "results.json").read_text())
        runs.append([(r["history"]["loss"], r["metrics"]["val_accuracy"]) for r in res["runs"]])
    assert runs[0] == runs[1]


def test_compare_prints_a_table(tmp_path, capsys):
    args = [a for a in SMALL if a != "--quiet"]
    assert main(["compare", *args, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "no dropout" in out and "val acc" in out and "results written to" in out


@pytest.mark.parametrize("flag,value,message", [
    ("--p", "1.5", r"compare: error: `--p` must be a probability in [0, 1]; got --p=1.5."),
    ("--seeds", "0", r"compare: error: `--seeds` must be an integer in [1, 1000]"),
    ("--epochs", "-2", r"compare: error: `--epochs` must be an integer in [1, 100000]; got --epochs=-2."),
    ("--dataset", "spirl", r"Did you mean 'spiral'?"),
    ("--variant", "dropot", r"Did you mean 'dropout'?"),
    ("--hidden", "64,x", r"`--hidden` must be comma-separated integers in [1, 8192]"),
    ("--optimizer", "adma", r"Did you mean 'adam'?"),
    ("--lr", "0", r"`--lr` must be a finite number > 0; got --lr=0."),
    ("--activation", "rlu", r"Did you mean 'relu'?"),
])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, flag, value, message):
    out = tmp_path / "bad"
    code = main(["compare", *SMALL, "--out", str(out), flag, value])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_argparse_errors_exit_2(capsys):
    assert main(["compare", "--p", "abc"]) == 2
    assert "`--p` must be a probability in [0, 1]; got --p=abc." in capsys.readouterr().err
    assert main(["nonsense"]) == 2


def test_help_lists_commands_without_importing_numba():
    code = ("import sys; from droplab.cli import main; rc = main(['--help']); "
            "assert 'numba' not in sys.modules, 'numba imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "compare" in r.stdout


def test_only_the_program_freezes_the_collector_at_exit(monkeypatch, capsys):
    # the droplab program skips the collector's passes at interpreter exit; a caller's main(argv)
    # leaves its own process's exit alone
    import atexit
    import gc

    registered = []
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: registered.append(f) or f)
    assert main(["--version"]) == 0
    assert gc.freeze not in registered
    monkeypatch.setattr(sys, "argv", ["droplab", "--version"])
    assert main() == 0
    assert registered == [gc.freeze]


def test_console_script_smoke(tmp_path):
    import shutil
    exe = shutil.which("droplab") or str(__import__("pathlib").Path(sys.executable).parent / "droplab")
    r = subprocess.run([exe, "compare", *SMALL, "--out", str(tmp_path / "s")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "results.json").exists()
    r = subprocess.run([exe, "compare", "--p", "2", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def _records(path):
    res = json.loads((path / "results.json").read_text())
    for r in res["runs"]:
        r["metrics"].pop("seconds_per_epoch")
    return res["runs"]


def test_compare_resume_after_a_killed_process_is_bit_identical(tmp_path):
    import os
    import signal
    import time

    # one worker, so that "run 0 finished, run 1 has a checkpoint" is a moment of the command
    args = ["compare", "--dataset", "spiral", "--hidden", "128", "--epochs", "150", "--batch-size", "0",
            "--seeds", "2", "--lr", "0.02", "--quiet", "--checkpoint-every", "3", "--max-norm", "3", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "cut"
    work = out / ".droplab-work"  # resume state lives inside --out, never beside it
    proc = subprocess.Popen([sys.executable, "-m", "droplab.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # kill once the first run has finished and the second has a checkpoint: mid-way through the command
    while not (work / "run-1.ckpt.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the command finished before it could be killed")
    assert not (out / "results.json").exists() and (work / "runs.jsonl").read_bytes().count(b"\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "whole"]  # nothing left beside --out
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert _records(out) == _records(tmp_path / "whole")
    assert not work.exists()


def test_compare_workers_1_and_2_write_identical_records(tmp_path):
    # issue 18: results do not depend on the worker count (every run computes with one thread)
    for w in ("1", "2"):
        assert main(["compare", *SMALL, "--workers", w, "--out", str(tmp_path / w)]) == 0
    assert _records(tmp_path / "1") == _records(tmp_path / "2")
    res = json.loads((tmp_path / "2" / "results.json").read_text())
    assert res["config"]["execution"] == {"backend": "loky", "workers": 2, "address": None} or \
        res["config"]["execution"]["workers"] == 1  # a one-core machine


def test_rerunning_the_same_command_resumes_without_a_flag(tmp_path, capsys):
    # one resume design (issue 16): the journal of finished runs is reused by the same command line
    from droplab.lab import runner

    out = tmp_path / "r"
    args = ["compare", *SMALL, "--workers", "1", "--out", str(out)]
    tasks = None

    real = runner._work
    calls = []

    def stop_after_two(task, *a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task.key)
        return real(task, *a, **k)

    runner._work = stop_after_two
    try:
        assert main(args) == 130
    finally:
        runner._work = real
    assert (out / ".droplab-work" / "runs.jsonl").read_bytes().count(b"\n") == 2
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "resuming: 2 of 4 runs done, 2 to go" in capsys.readouterr().out
    assert tasks is None and not (out / ".droplab-work").exists()


def test_resume_refuses_other_flags(tmp_path, capsys):
    work = tmp_path / "r" / ".droplab-work"
    work.mkdir(parents=True)
    (work / "config.sha256").write_text("0" * 64 + "\n")
    code = main(["compare", *SMALL, "--out", str(tmp_path / "r"), "--resume"])
    assert code == 2
    assert "`resume` must be used with the flags of the interrupted run" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".droplab-work"]  # kept for a --resume
