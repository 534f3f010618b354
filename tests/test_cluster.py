"""Sweeps on real clusters: a local Dask cluster (``distributed.LocalCluster``, worker processes on
loopback) and a local Ray (``ray.init(num_cpus=2)``), each started once for this file and torn down
at its end. The records equal the local backend's, timings and host aside; a client killed after
its first record resumes to one record per run; the data set travels as arrays; an unreachable
address, a missing package and a failed worker are one line and exit status 2; the README's
"Scaling out" commands run as written (the documented address replaced by the test cluster's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from droplab import cli
from droplab.cli import main
from droplab.lab import runner

ROOT = Path(__file__).resolve().parents[1]
# spiral, 8 hidden units, full batch, 2 epochs: 4 runs of milliseconds each
TINY = ["--dataset", "spiral", "--hidden", "8", "--epochs", "2", "--batch-size", "0", "--lr", "0.05", "--quiet",
        "--p", "0,0.5", "--seeds", "2"]

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install '.[test]')")


def _ray_or_reason() -> str | None:
    try:
        import ray  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - an import that fails for any reason skips the Ray tests
        return f"ray cannot be imported here: {type(exc).__name__}: {exc}"
    return None


RAY_MISSING = _ray_or_reason()
needs_ray = pytest.mark.skipif(RAY_MISSING is not None, reason=RAY_MISSING or "")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip(record: dict) -> str:
    """A record without what depends on where and when it ran: its timing and its host."""
    r = json.loads(json.dumps(record))
    r["metrics"].pop("seconds_per_epoch")
    r.pop("host")
    return json.dumps(r, sort_keys=True)


def _same(a: list[dict], b: list[dict]) -> bool:
    return sorted(map(_strip, a)) == sorted(map(_strip, b))


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """The directory the cluster's workers run in: not the client's."""
    return tmp_path_factory.mktemp("workers-cwd")


@pytest.fixture(scope="module")
def dask_address(elsewhere):
    """A real local Dask cluster: 2 worker processes of one thread on 127.0.0.1, started in ``elsewhere``."""
    from distributed import LocalCluster

    old = os.getcwd()
    os.chdir(elsewhere)  # the worker processes start here and stay here
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0", silence_logs=40)
    finally:
        os.chdir(old)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray of 2 CPUs; its address lets another process (a killed client) join it."""
    if RAY_MISSING:
        pytest.skip(RAY_MISSING)
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> list[dict]:
    """The 4-run sweep on the local backend (loky, 2 processes): the records every backend must give."""
    out = tmp_path_factory.mktemp("loky") / "sw"
    assert main(["sweep", *TINY, "--workers", "2", "--out", str(out)]) == 0
    return _lines(out / "runs.jsonl")


# ---------------------------------------------------------------------------------------------
# records: the local backend's, timings and hosts aside


def test_dask_cluster_records_equal_the_local_backends(tmp_path, dask_address, local_runs):
    out = tmp_path / "sw"
    # with an address, --workers is runs in flight: not capped at this machine's cores
    assert main(["sweep", *TINY, "--backend", "dask", "--address", dask_address, "--workers", "1000",
                 "--out", str(out)]) == 0
    runs = _lines(out / "runs.jsonl")
    assert len(runs) == 4 and _same(runs, local_runs)
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["backend"] == "dask" and res["config"]["address"] == dask_address
    assert res["config"]["hosts"] == [socket.gethostname()] and all(r["host"] == socket.gethostname()
                                                                   for r in res["runs"])
    assert _same(res["runs"], local_runs)


def test_dask_address_from_the_environment(tmp_path, dask_address, local_runs, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_address)
    out = tmp_path / "sw"
    assert main(["sweep", *TINY, "--backend", "dask", "--out", str(out)]) == 0
    assert _same(_lines(out / "runs.jsonl"), local_runs)
    assert json.loads((out / "results.json").read_text())["config"]["address"] == dask_address


@pytest.mark.slow
def test_dask_without_an_address_starts_and_stops_a_local_cluster(tmp_path, local_runs):
    import multiprocessing

    out = tmp_path / "sw"
    before = len(multiprocessing.active_children())
    assert main(["sweep", *TINY, "--backend", "dask", "--workers", "2", "--out", str(out)]) == 0
    assert _same(_lines(out / "runs.jsonl"), local_runs)
    assert json.loads((out / "results.json").read_text())["config"]["address"] is None
    assert len(multiprocessing.active_children()) == before  # its workers are gone


@needs_ray
def test_ray_records_equal_the_local_backends(tmp_path, ray_address, local_runs):
    for name, extra in (("local", []), ("address", ["--address", ray_address])):
        out = tmp_path / name
        assert main(["sweep", *TINY, "--backend", "ray", *extra, "--out", str(out)]) == 0
        runs = _lines(out / "runs.jsonl")
        assert len(runs) == 4 and _same(runs, local_runs), name
        res = json.loads((out / "results.json").read_text())
        assert res["config"]["backend"] == "ray" and res["config"]["hosts"] == [socket.gethostname()]


# ---------------------------------------------------------------------------------------------
# data travels as arrays


def test_a_relative_csv_sweeps_on_workers_in_another_directory(tmp_path, dask_address, elsewhere, monkeypatch,
                                                               seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    (tmp_path / "rel").mkdir()
    with open(tmp_path / "rel" / "data.csv", "w") as f:
        f.write("a,b,label\n" + "".join(f"{a:.6f},{b:.6f},{c}\n" for (a, b), c in zip(X, y)))
    assert not (elsewhere / "rel").exists()  # the workers could not open the path if they were given it
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--dataset", "rel/data.csv", "--hidden", "4", "--epochs", "2", "--batch-size", "0",
            "--p", "0,0.5", "--seeds", "1", "--quiet", "--out", "out"]
    assert main([*args, "--backend", "dask", "--address", dask_address]) == 0
    assert main([*args[:-1], "out-local", "--workers", "1"]) == 0
    assert _same(_lines(tmp_path / "out" / "runs.jsonl"), _lines(tmp_path / "out-local" / "runs.jsonl"))


# ---------------------------------------------------------------------------------------------
# a client killed after its first record resumes to one record per run


SLOW = ["--dataset", "spiral", "--hidden", "64", "--epochs", "600", "--batch-size", "0", "--lr", "0.05",
        "--p", "0,0.5", "--seeds", "2", "--workers", "1", "--quiet"]


def _kill_after_first_record(argv: list[str], runs: Path) -> int:
    """Start ``droplab`` as a real process, SIGKILL it once runs.jsonl holds a record; the lines left."""
    env = {k: v for k, v in os.environ.items() if k not in runner.ADDRESS_ENV.values()}
    proc = subprocess.Popen([sys.executable, "-m", "droplab", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.exists() and runs.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return runs.read_bytes().count(b"\n")


@pytest.mark.parametrize("name", ["dask", "ray"])
def test_a_killed_sweep_resumes_to_one_record_per_run(tmp_path, name, request, capsys):
    if name == "ray" and RAY_MISSING:
        pytest.skip(RAY_MISSING)
    address = request.getfixturevalue(f"{name}_address")
    out = tmp_path / "sw"
    argv = ["sweep", *SLOW, "--backend", name, "--address", address, "--out", str(out)]
    kept = _kill_after_first_record(argv, out / "runs.jsonl")
    assert 1 <= kept < 4
    capsys.readouterr()
    assert main(argv) == 0
    runs = _lines(out / "runs.jsonl")
    assert len(runs) == 4 and len({r["key"] for r in runs}) == 4
    res = json.loads((out / "results.json").read_text())
    assert sorted(r["key"] for r in res["runs"]) == sorted(r["key"] for r in runs)


# ---------------------------------------------------------------------------------------------
# one line and exit 2: a missing package, an unreachable address, a failed worker


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name,package", [("dask", "distributed"), ("ray", "ray")])
def test_a_missing_package_is_one_line(tmp_path, capsys, monkeypatch, name, package):
    monkeypatch.setitem(sys.modules, package, None)  # hidden: find_spec and import both see no package
    assert main(["sweep", *TINY, "--backend", name, "--out", str(tmp_path / "o")]) == 2
    err = _one_line(capsys)
    assert f"{package} is not installed" in err and "pip install" in err and "--backend loky" in err
    assert not (tmp_path / "o").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize("name", ["dask", "ray"])
def test_an_unreachable_address_is_one_line_within_the_timeout(tmp_path, capsys, name):
    if name == "ray" and RAY_MISSING:
        pytest.skip(RAY_MISSING)
    address = f"{'tcp://' if name == 'dask' else ''}127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    assert main(["sweep", *TINY, "--backend", name, "--address", address, "--out", str(tmp_path / "o")]) == 2
    assert time.monotonic() - start < runner.CONNECT_TIMEOUT
    err = _one_line(capsys)
    assert "`address` must be a reachable" in err and "within 10 s" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_a_silent_address_gives_up_after_the_connect_timeout(tmp_path, capsys):
    # something accepts the connection but never speaks dask: the client's own 10 s timeout
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        assert main(["sweep", *TINY, "--backend", "dask", "--address", address, "--out", str(tmp_path / "o")]) == 2
        took = time.monotonic() - start
    assert took < runner.CONNECT_TIMEOUT + 5  # the timeout, plus the client's own start-up
    err = _one_line(capsys)
    assert "`address` must be a reachable dask scheduler" in err


def test_address_is_refused_with_the_local_backend(tmp_path, capsys):
    assert main(["sweep", *TINY, "--address", "tcp://127.0.0.1:8786", "--out", str(tmp_path / "o")]) == 2
    assert "`address` must be used with --backend dask or ray" in _one_line(capsys)


def test_workers_above_the_cores_need_an_address(tmp_path, capsys):
    from droplab import _validate

    n = _validate.usable_cores() + 1
    assert main(["sweep", *TINY, "--backend", "dask", "--workers", str(n), "--out", str(tmp_path / "o")]) == 2
    err = _one_line(capsys)
    assert f"got --workers={n}." in err and "without a cluster --address" in err


@pytest.mark.parametrize("name", ["dask", "ray"])
def test_a_failed_worker_is_one_line(name, request):
    if name == "ray" and RAY_MISSING:
        pytest.skip(RAY_MISSING)
    from droplab.lab import experiment

    address = request.getfixturevalue(f"{name}_address")
    cfg = experiment.RunConfig(dataset="spiral", hidden=(4,), epochs=1, batch_size=None, lr=0.05)
    # measure(model, ds, task) runs on the worker after training: divmod takes 2 arguments, not 3
    task = runner.Task("k0", cfg, 0.5, 0, {}, measure=divmod)
    with pytest.raises(runner.WorkerError, match=rf"run k0 \(p=0.5, seed=0\) failed on the {name} cluster: .*"
                                                 r"TypeError.*divmod.*rerun the same command") as info:
        runner.execute([task], workers=1, backend_name=name, address=address, where="sweep")
    text, code = cli.describe(info.value)
    assert code == 2 and "\n" not in text


# ---------------------------------------------------------------------------------------------
# --help and the written address


def test_help_explains_address_and_workers_per_backend(capsys):
    assert main(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("$DASK_SCHEDULER_ADDRESS", "$RAY_ADDRESS", "connect timeout 10 s", "runs in flight",
                   "does not resize the cluster", "size of the local cluster", "usable cores"):
        assert needle in text, needle


def test_credentials_never_reach_the_results():
    assert runner.public_address("tls://alice:s3cret@sched.example:8786/x?token=t") == "tls://sched.example:8786"
    assert runner.public_address("ray://u:p@head:10001") == "ray://head:10001"
    assert runner.public_address("127.0.0.1:6379") == "127.0.0.1:6379"


# ---------------------------------------------------------------------------------------------
# the README's "Scaling out" section runs as written


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Scaling out"):text.index("## The command line")]


def _commands(block_lang: str = "sh") -> list[str]:
    blocks = re.findall(rf"```{block_lang}\n(.*?)```", _section(), re.S)
    return [line for b in blocks for line in b.splitlines() if line.startswith("droplab ")]


def _run_readme_commands(tmp_path, monkeypatch, backend: str, address: str) -> None:
    monkeypatch.chdir(tmp_path)
    cmds = [c for c in _commands() if f"--backend {backend}" in c]
    assert len(cmds) >= 2 and any("--address" in c for c in cmds)
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        if "--address" in argv:
            argv[argv.index("--address") + 1] = address  # the test cluster's, not the documented port
        assert main([*argv, "--quiet"]) == 0, cmd


@pytest.mark.slow
def test_readme_dask_commands_run(tmp_path, monkeypatch, dask_address):
    _run_readme_commands(tmp_path, monkeypatch, "dask", dask_address)


@pytest.mark.slow
@needs_ray
def test_readme_ray_commands_run(tmp_path, monkeypatch, ray_address):
    _run_readme_commands(tmp_path, monkeypatch, "ray", ray_address)


@pytest.mark.slow
def test_readme_gridsearch_on_dask_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _section(), re.S)
    code = next(b for b in blocks if "GridSearchCV" in b)
    script = tmp_path / "search.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "'p':" in r.stdout
