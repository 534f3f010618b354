"""`droplab sweep`: the grid, resumption after kill -9, parallel = serial, config changes, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from droplab.cli import main
from droplab.lab import sweep

# spiral, 8 hidden units, full batch, 2 epochs: a run takes milliseconds once the kernels are warm
TINY = ["--dataset", "spiral", "--hidden", "8", "--epochs", "2", "--batch-size", "0", "--lr", "0.05", "--quiet"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip_timing(record):
    r = json.loads(json.dumps(record))
    del r["metrics"]["seconds_per_epoch"]
    return r


def test_sweep_writes_runs_summary_and_plots(tmp_path, seed):
    out = tmp_path / "sw"
    s = seed % 1000
    assert main(["sweep", *TINY, "--p", "0,0.5", "--hidden", "8", "--hidden", "4,4", "--seeds", "2", "--seed", str(s),
                 "--out", str(out)]) == 0
    runs = _lines(out / "runs.jsonl")
    assert len(runs) == 2 * 2 * 2 and len({r["key"] for r in runs}) == 8
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "sweep" and {"droplab", "numpy"} <= set(res["versions"])
    assert res["config"]["grid"]["p"] == [0.0, 0.5] and res["config"]["grid"]["hidden"] == [[8], [4, 4]]
    assert res["config"]["seeds"] == [s, s + 1]
    assert sorted(json.dumps(r, sort_keys=True) for r in res["runs"]) == sorted(
        json.dumps(r, sort_keys=True) for r in runs)
    for r in res["runs"]:  # the record of compare, plus the knobs of its grid point
        assert {"p", "seed", "metrics", "history", "hidden", "dataset", "lr"} <= set(r)
        assert 0 <= r["metrics"]["val_accuracy"] <= 1 and len(r["history"]["loss"]) == 2
    assert len(res["summary"]) == 4
    for row in res["summary"]:
        mine = [r["metrics"]["val_accuracy"] for r in runs if r["p"] == row["p"] and r["hidden"] == row["hidden"]]
        va = row["val_accuracy"]
        assert va["n"] == 2 and va["mean"] == pytest.approx(sum(mine) / 2)
        # n = 2: no interval (t(0.975, 1) = 12.7 makes it meaningless): the range, marked as such
        assert va["ci95"] is None and va["kind"] == "range"
        assert (va["min"], va["max"]) == (min(mine), max(mine))
    assert {b["line"] for b in res["best"]} == {"hidden=8", "hidden=4,4"}
    for name in ("sweep_p.png", "gap.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no temporary or lock file left; only droplab's manifest of its own files
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".droplab.json"]


@pytest.mark.parametrize("hidden", [["--hidden", "8/4,4"], ["--hidden", "8;4,4"], ["--hidden", "8", "--hidden", "4,4"]])
def test_architectures_without_a_shell_metacharacter(tmp_path, hidden):
    # issue 16: `--hidden "8;4,4"` needed quoting; '/' and a repeated flag need none (';' still works)
    out = tmp_path / "h"
    assert main(["sweep", *TINY, "--p", "0", "--seeds", "1", *hidden, "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["grid"]["hidden"] == [[8], [4, 4]]


def test_sweep_sets_model_and_max_norm(tmp_path):
    # issue 16: sweep could not set the model or max_norm that compare could
    out = tmp_path / "m"
    assert main(["sweep", *TINY, "--p", "0.2", "--seeds", "1", "--model", "mlp,rnn", "--max-norm", "0,3",
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["grid"]["model"] == ["mlp", "rnn"] and res["config"]["grid"]["max_norm"] == [0.0, 3.0]
    assert len(res["runs"]) == 4


def test_workers_2_gives_the_records_of_workers_1(tmp_path):
    recs = {}
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        assert main(["sweep", *TINY, "--p", "0,0.2,0.5", "--seeds", "2", "--workers", str(w), "--out", str(out)]) == 0
        recs[w] = sorted((_strip_timing(r) for r in _lines(out / "runs.jsonl")), key=lambda r: r["key"])
    assert len(recs[1]) == 6
    assert recs[1] == recs[2]


def test_kill_9_midway_then_rerun_completes_only_the_missing_runs(tmp_path):
    out = tmp_path / "killed"
    # 8 runs of about 0.1-0.5 s each (mini-batches of 30): slow enough to be caught midway
    args = ["sweep", "--dataset", "spiral", "--hidden", "8", "--epochs", "4", "--batch-size", "30", "--lr", "0.05",
            "--p", "0,0.5", "--seeds", "4", "--quiet", "--out", str(out)]
    cmd = [sys.executable, "-m", "droplab.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.exists() and runs.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    before = runs.read_bytes()
    n_before = before.count(b"\n")
    assert 1 <= n_before < 8, f"the sweep was not caught midway ({n_before} of 8 runs)"
    assert not (out / "results.json").exists()

    r = subprocess.run([sys.executable, "-m", "droplab.cli", *[a for a in args if a != "--quiet"]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{n_before} of 8 runs done, {8 - n_before} to go" in r.stdout
    after = runs.read_bytes()
    assert after.startswith(before[:before.rfind(b"\n") + 1])  # finished runs were kept, not redone
    keys = [rec["key"] for rec in _lines(runs)]
    assert len(keys) == 8 and len(set(keys)) == 8
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 8


def test_torn_last_line_is_dropped_on_resume(tmp_path):
    out = tmp_path / "torn"
    base = ["sweep", *TINY, "--p", "0,0.5", "--seeds", "2", "--out", str(out)]
    assert main(base) == 0
    runs = out / "runs.jsonl"
    lines = runs.read_bytes().splitlines(keepends=True)
    # as if killed while writing the 4th record: three whole lines and half of the fourth
    runs.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    assert main(base) == 0
    recs = _lines(runs)
    assert len(recs) == 4 and len({r["key"] for r in recs}) == 4
    assert sorted(map(json.dumps, map(_strip_timing, recs))) == sorted(
        json.dumps(_strip_timing(json.loads(x))) for x in lines)


def test_load_runs_drops_torn_duplicate_and_stray_lines(tmp_path):
    path = tmp_path / "runs.jsonl"
    sweep.append_record(path, {"key": "a", "v": 1})
    sweep.append_record(path, {"key": "b", "v": 2})
    with open(path, "ab") as f:
        f.write(b'{"key": "a", "v": 3}\n{"key": "zz"}\nnot json\n{"key": "c", "v"')
    kept, dropped = sweep.load_runs(path, keys=["a", "b", "c"])
    assert kept == {"a": {"key": "a", "v": 1}, "b": {"key": "b", "v": 2}} and dropped == 4
    assert path.read_text() == '{"key":"a","v":1}\n{"key":"b","v":2}\n'  # rewritten clean
    sweep.append_record(path, {"key": "c", "v": 4})
    assert sweep.load_runs(path)[0]["c"] == {"key": "c", "v": 4}
    assert sweep.load_runs(tmp_path / "missing.jsonl") == ({}, 0)


def test_changed_grid_is_rejected_unless_force(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", *TINY, "--p", "0,0.5", "--seeds", "1", "--out", str(out)]) == 0
    old = (out / "runs.jsonl").read_text()
    capsys.readouterr()
    assert main(["sweep", *TINY, "--p", "0,0.3", "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a sweep of another grid" in err and "--force" in err and err.count("\n") == 1
    assert (out / "runs.jsonl").read_text() == old  # nothing touched
    assert main(["sweep", *TINY, "--p", "0,0.5", "--seeds", "2", "--out", str(out)]) == 2  # more seeds: new config
    assert main(["sweep", *TINY, "--p", "0,0.3", "--seeds", "1", "--out", str(out), "--force"]) == 0
    assert sorted(r["p"] for r in _lines(out / "runs.jsonl")) == [0.0, 0.3]
    # workers and backend are not part of the config: a rerun with other workers resumes
    assert main(["sweep", *TINY, "--p", "0,0.3", "--seeds", "1", "--out", str(out), "--workers", "2"]) == 0


def test_out_holding_other_files_is_rejected(tmp_path, capsys):
    out = tmp_path / "other"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["sweep", *TINY, "--p", "0", "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a new or empty folder, or one holding sweep results" in err and "--force" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_a_second_sweep_on_a_busy_folder_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        with pytest.raises(ValueError, match=r"sweep: `out` must be a folder no other droplab command is writing to"):
            main(["sweep", *TINY, "--p", "0", "--seeds", "1", "--out", str(out), "--debug"])
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []
    assert main(["sweep", *TINY, "--p", "0", "--seeds", "1", "--out", str(out)]) == 0  # free again


def test_toml_config_and_flags_override_it(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text('dataset = "spiral"\np = [0, 0.25]\nhidden = [[8], "4,4"]\nepochs = 2\nbatch-size = 0\n'
                   'lr = 0.05\nseeds = 2\n')
    out = tmp_path / "t"
    assert main(["sweep", "--config", str(cfg), "--quiet", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["grid"]["hidden"] == [[8], [4, 4]] and res["config"]["grid"]["p"] == [0.0, 0.25]
    assert len(res["runs"]) == 2 * 2 * 2
    out2 = tmp_path / "t2"
    assert main(["sweep", "--config", str(cfg), "--p", "0.5", "--seeds", "1", "--quiet", "--out", str(out2)]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["config"]["grid"]["p"] == [0.5] and res2["config"]["grid"]["hidden"] == [[8], [4, 4]]
    assert len(res2["runs"]) == 2


def test_expand_orders_points_and_config_hash_ignores_nothing_that_matters():
    grid = {"hidden": [[8], [16]], "p": [0.0, 0.5]}
    assert sweep.expand(grid) == [{"hidden": [8], "p": 0.0}, {"hidden": [8], "p": 0.5},
                                  {"hidden": [16], "p": 0.0}, {"hidden": [16], "p": 0.5}]
    h = sweep.config_hash(grid, [0, 1], "label")
    assert h != sweep.config_hash(grid, [0, 2], "label")
    assert h != sweep.config_hash({**grid, "lr": [0.1]}, [0, 1], "label")
    assert sweep.run_key({"p": 0.0}, 0) != sweep.run_key({"p": 0.0}, 1)




@pytest.mark.parametrize("flags,message", [
    (["--p", "0,1.5"], r"sweep: `p` must be a probability in [0, 1]; got p=1.5."),
    (["--p", "0,x"], r"sweep: `p` must be comma-separated numbers like 0,0.1,0.3 (--p); got p='0,x'."),
    (["--hidden", "8;x"], r"`hidden` must be comma-separated positive integers"),
    (["--hidden", "8/x"], r"`hidden` must be comma-separated positive integers"),
    (["--model", "cnnn"], r"Did you mean 'cnn'?"),
    (["--lr", "0"], r"sweep: `lr` must be a finite number > 0; got lr=0.0."),
    (["--epochs", "2.5"], r"sweep: `epochs` must be comma-separated numbers like 10,20 (--epochs)"),
    (["--optimizer", "adma"], r"Did you mean 'adam'?"),
    (["--variant", "dropot"], r"Did you mean 'dropout'?"),
    (["--dataset", "spirl"], r"Did you mean 'spiral'?"),
    (["--seeds", "0"], r"sweep: error: `--seeds` must be an integer in [1, 1000]"),
    (["--workers", "0"], r"sweep: error: `--workers` must be an integer in [1, "),
    (["--backend", "dsk"], r"Did you mean 'dask'?"),
    (["--config", "missing.toml"], r"sweep: `config` must be an existing TOML file; got config='missing.toml'."),
])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    code = main(["sweep", *TINY, "--out", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_bad_toml_key_and_value(tmp_path, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text("pp = [0.1]\n")
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "sweep (g.toml): `key` must be a knob of the grid; got key='pp'. Did you mean 'p'?" in capsys.readouterr().err
    cfg.write_text("lr = 'fast'\n")
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "sweep (g.toml): `lr` must be a real number; got lr='fast'." in capsys.readouterr().err
    cfg.write_text("p = [0.1\n")
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "`config` must be a valid TOML file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("backend,package", [("dask", "distributed"), ("ray", "ray")])
def test_cluster_backend_without_its_package_is_one_line(tmp_path, capsys, backend, package):
    import importlib.util

    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    assert main(["sweep", *TINY, "--backend", backend, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{package} is not installed" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow on the way to a NaN loss
def test_a_diverging_run_is_recorded_not_fatal(tmp_path, capsys):
    out = tmp_path / "div"
    args = ["sweep", *TINY, "--optimizer", "sgd", "--lr", "1e30,0.05", "--p", "0", "--seeds", "1", "--out", str(out)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    bad, good = res["runs"]
    assert bad["lr"] == 1e30 and isinstance(bad["error"], str) and bad["error"]  # fit's FloatingPointError
    assert bad["metrics"] is None and "error" not in good and 0 <= good["metrics"]["val_accuracy"] <= 1
    assert [row["diverged"] for row in res["summary"]] == [1, 0]
    assert res["summary"][0]["val_accuracy"] is None and res["summary"][1]["val_accuracy"]["n"] == 1
    assert [b["line"] for b in res["best"]] == ["lr=0.05"]
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 0  # deterministic: counted as done on resume
    assert "2 of 2 runs done, 0 to go" in capsys.readouterr().out
