"""Results folders are safe by construction (issue 13): droplab never deletes a file it did not
write, keeps its temporary and resume state inside --out, locks the folder for the whole
command, resumes past a damaged file, and its sweep workers die with their parent.

Every CLI run here that exits non-zero must print exactly one line on stderr.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from droplab.cli import main

FAST = ["--dataset", "spiral", "--epochs", "1", "--batch-size", "0", "--hidden", "4", "--quiet"]
COMMANDS = {  # every command that writes a results folder, at its quickest settings
    "compare": ["compare", *FAST, "--seeds", "1"],
    "uncertainty": ["uncertainty", *FAST, "--samples-list", "1,2", "--ood-samples", "10"],
    "ensemble": ["ensemble", "--dataset", "spiral", "--units", "2", "--epochs", "1", "--batch-size", "0",
                 "--max-T", "2", "--repeats", "1", "--head", "softmax", "--quiet"],
    "bench": ["bench", "--tiny", "--sections", "dropout", "--repeats", "1", "--quiet"],
    "study": ["study", "cost", "--tiny", "--quiet"],
    "sweep": ["sweep", *FAST, "--p", "0", "--seeds", "1"],
}


def _run(argv, capsys, code=None):
    """main(argv); a non-zero exit must come with exactly one stderr line."""
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    if got != 0:
        assert err.count("\n") == 1 and err.endswith("\n"), err
    if code is not None:
        assert got == code, err
    return got, err


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under root: contents (files) and mode bits."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            out[rel] = (p.read_bytes() if stat.S_ISREG(st.st_mode) else b"", stat.S_IMODE(st.st_mode))
    return out


def _user_folder(root: Path) -> Path:
    root.mkdir()
    (root / "notes.txt").write_text("keep me\n")
    return root


def _git_checkout(root: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root.mkdir()
    (root / "README.md").write_text("# my project\n")
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return root


def _home_folder(root: Path) -> Path:
    root.mkdir()
    (root / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    (root / ".ssh").mkdir(mode=0o700)
    (root / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    os.chmod(root / ".ssh" / "id_rsa", 0o600)
    return root


FOLDERS = {"user-file": _user_folder, "git-checkout": _git_checkout, "home": _home_folder}


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory):
    """A finished compare folder, as the directory `droplab report` reads."""
    root = tmp_path_factory.mktemp("safety") / "cmp"
    assert main([*COMMANDS["compare"], "--out", str(root)]) == 0
    return root


def _argv(command, out, results_folder):
    if command == "report":
        return ["report", str(results_folder), "--quiet", "--out", f"{out}/"]
    return [*COMMANDS[command], "--out", str(out)]


ALL = [*COMMANDS, "report"]


# ----------------------------------------------------------------------------- never delete a user's file


@pytest.mark.parametrize("kind", FOLDERS)
@pytest.mark.parametrize("command", ALL)
def test_a_folder_of_other_files_is_refused_and_kept_byte_for_byte(tmp_path, capsys, command, kind,
                                                                   results_folder):
    out = FOLDERS[kind](tmp_path / "target")
    before = _snapshot(out)
    _, err = _run(_argv(command, out, results_folder), capsys, code=2)
    assert "--force" in err and "`out`" in err
    assert _snapshot(out) == before  # not one byte, not one new file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # nothing beside it either


@pytest.mark.parametrize("command", ALL)
def test_force_adds_droplabs_files_and_keeps_every_user_file(tmp_path, capsys, command, results_folder):
    out = tmp_path / "target"
    _user_folder(out)
    git = _git_checkout(out / "repo")
    _home_folder(out / "home")
    shutil.copytree(git / ".git", out / ".git")  # the folder itself is a checkout too
    (out / ".bashrc").write_text("alias ll='ls -l'\n")
    before = _snapshot(out)
    _run([*_argv(command, out, results_folder), "--force"], capsys, code=0)
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before
    new = set(after) - set(before)
    assert new and "results.json" in new or new == {"report.html"}, new


# ----------------------------------------------------------------------------- the same command again


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_same_command_twice_replaces_only_its_own_files(tmp_path, capsys, command):
    out = tmp_path / "res"
    argv = [*COMMANDS[command], "--out", str(out)]
    _run(argv, capsys, code=0)
    assert main(["report", str(out), "--quiet"]) == 0  # `make demo` then a report
    (out / "notes.txt").write_text("mine\n")
    page = (out / "report.html").read_bytes()
    first = json.loads((out / "results.json").read_text())
    _run(argv, capsys, code=0)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "report.html").read_bytes() == page
    assert json.loads((out / "results.json").read_text())["command"] == first["command"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
    assert not (out / ".droplab-tmp").exists()


def test_make_demo_twice_keeps_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run([*COMMANDS["compare"]], capsys, code=0)  # --out defaults to results/compare
    _run(["report", "results/compare", "--quiet"], capsys, code=0)
    page = Path("results/compare/report.html").read_bytes()
    _run([*COMMANDS["compare"]], capsys, code=0)
    assert Path("results/compare/report.html").read_bytes() == page
    assert json.loads(Path("results/compare/results.json").read_text())["command"] == "compare"


def test_a_stale_file_of_the_same_command_is_replaced_not_kept(tmp_path, capsys):
    out = tmp_path / "res"
    _run([*COMMANDS["compare"], "--out", out], capsys, code=0)
    assert (out / "decision_boundary.png").exists()  # spiral is 2-D
    _run(["compare", "--dataset", "breast_cancer", "--epochs", "1", "--batch-size", "0", "--seeds", "1",
          "--hidden", "4", "--quiet", "--out", out], capsys, code=0)
    assert not (out / "decision_boundary.png").exists()  # droplab's own, from the run before: removed


def test_report_never_overwrites_a_page_droplab_did_not_write(tmp_path, capsys, results_folder):
    folder = tmp_path / "cmp"
    shutil.copytree(results_folder, folder)
    (folder / "report.html").write_text("<html>my own page</html>")
    for extra in ([], ["--force"]):
        _, err = _run(["report", folder, "--quiet", *extra], capsys, code=2)
        assert "report.html" in err
        assert (folder / "report.html").read_text() == "<html>my own page</html>"
    own = tmp_path / "page.html"
    _run(["report", folder, "--quiet", "--out", own], capsys, code=0)
    _run(["report", folder, "--quiet", "--out", own], capsys, code=0)  # its own page: replaced


def test_report_out_with_a_trailing_slash_is_a_folder(tmp_path, capsys, results_folder):
    _run(["report", results_folder, "--quiet", "--out", f"{tmp_path / 'new'}/"], capsys, code=0)
    assert (tmp_path / "new" / "report.html").is_file()


def test_report_on_a_malformed_results_file_names_it(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"command": "compare", "runs": 5}))
    _, err = _run(["report", tmp_path], capsys, code=2)
    assert "results.json" in err and "not iterable" not in err
    (tmp_path / "results.json").write_text(json.dumps({"command": "compare", "runs": [1, 2]}))
    _, err = _run(["report", tmp_path], capsys, code=2)
    assert "results.json" in err


# ----------------------------------------------------------------------------- bad --out, before any work


@pytest.mark.parametrize("out", [".", "", "..", "/"])
def test_an_out_naming_no_folder_is_refused_before_training(tmp_path, capsys, monkeypatch, out):
    from droplab.lab import experiment

    monkeypatch.chdir(tmp_path)

    def no_training(*a, **k):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(experiment, "train_run", no_training)
    _, err = _run([*COMMANDS["compare"], "--out", out], capsys, code=2)
    assert "`out` must be the name of a results folder" in err
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_is_one_line_naming_it(tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    _, err = _run([*COMMANDS["compare"], "--out", long], capsys, code=2)
    assert "--out" in err and "too long" in err
    _, err = _run([*COMMANDS["compare"], "--out", "/proc/droplab-results"], capsys, code=2)
    assert "--out" in err and "/proc/droplab-results" in err


def test_a_full_disk_is_one_line_naming_out(tmp_path, capsys):
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        out = mnt / "res"
        _, err = _run([*COMMANDS["compare"], "--out", out], capsys, code=2)
        assert "--out" in err and str(out) in err and ".droplab-tmp" not in err
        assert [p.name for p in mnt.iterdir()] in ([], ["res"])
        assert not (out / ".droplab-tmp").exists()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_results_folders_have_ordinary_permissions(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        for command in ("compare", "sweep"):
            out = tmp_path / command
            _run([*COMMANDS[command], "--out", out], capsys, code=0)
            assert stat.S_IMODE(out.stat().st_mode) == 0o750, command
            for f in out.iterdir():
                if f.is_file():
                    assert stat.S_IMODE(f.stat().st_mode) == 0o640, (command, f.name)
    finally:
        os.umask(old)


def test_sweep_validates_everything_before_writing(tmp_path, capsys):
    for flags in (["--seed", "-1"], ["--hidden", "1000000000"], ["--workers", str(10**30)]):
        out = tmp_path / "sw"
        _run([*COMMANDS["sweep"], *flags, "--out", out], capsys, code=2)
        assert not out.exists(), flags


def test_versions_come_from_installed_packages_not_imports():
    from importlib import metadata

    code = ("import json, sys; from droplab.lab._results import versions; "
            "print(json.dumps([versions(), sorted(m for m in ('matplotlib', 'rich', 'joblib', 'scipy') "
            "if m in sys.modules)]))")
    got, imported = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout)
    for dist in ("numpy", "matplotlib", "rich", "joblib", "scipy", "scikit-learn", "numba"):
        try:
            assert got[dist] == metadata.version(dist)
        except metadata.PackageNotFoundError:
            assert dist not in got
    assert "matplotlib" not in imported  # recorded without importing it


# ----------------------------------------------------------------------------- one lock for every command


@pytest.mark.parametrize("command", ALL)
def test_a_folder_another_command_is_writing_is_refused(tmp_path, capsys, command, results_folder):
    import fcntl

    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running droplab command holds it
        if command == "report":  # writing a page does not lock: reading a running sweep is a feature
            _run(_argv(command, out, results_folder), capsys, code=0)
            return
        _, err = _run(_argv(command, out, results_folder), capsys, code=2)
        assert "no other droplab command is writing to" in err
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []


def _droplab(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "droplab.cli", *map(str, argv)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kw)


def test_compare_on_a_running_sweeps_folder_fails_and_the_sweep_finishes(tmp_path, capsys):
    out = tmp_path / "sw"
    proc = _droplab("sweep", "--dataset", "spiral", "--hidden", "32", "--epochs", "60", "--batch-size", "32",
                    "--p", "0,0.2,0.4", "--seeds", "1", "--quiet", "--out", out)
    deadline = time.monotonic() + 60
    while not (out / "sweep.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("the sweep finished before compare could run")
    sweep_json = (out / "sweep.json").read_bytes()
    _, err = _run([*COMMANDS["compare"], "--out", out], capsys, code=2)
    assert "no other droplab command is writing to" in err
    assert (out / "sweep.json").read_bytes() == sweep_json
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "sweep" and len(res["runs"]) == 3


# ----------------------------------------------------------------------------- killed runs


@pytest.mark.parametrize("command", ["compare", "uncertainty", "bench"])
def test_a_killed_run_leaves_nothing_beside_out_and_the_next_run_cleans_up(tmp_path, capsys, command):
    long = {"compare": ["compare", "--dataset", "spiral", "--hidden", "64", "--epochs", "400", "--seeds", "1",
                        "--batch-size", "0", "--quiet"],
            "uncertainty": ["uncertainty", "--dataset", "spiral", "--hidden", "64", "--epochs", "400",
                            "--batch-size", "0", "--quiet"],
            "bench": ["bench", "--tiny", "--sections", "dropout,spiral", "--quiet"]}[command]
    out = tmp_path / "res"
    proc = _droplab(*long, "--out", out)
    deadline = time.monotonic() + 60
    while not list((out / ".droplab-tmp").glob("stage-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the command finished before it could be killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no .res.tmp-* in the parent
    assert not (out / "results.json").exists()
    _run([*COMMANDS[command], "--out", out], capsys, code=0)
    assert not (out / ".droplab-tmp").exists()  # the stale staging folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def _interrupt_compare(monkeypatch, out, args, after: int):
    """Run compare until `after` runs have finished, then interrupt it as Ctrl-C would."""
    from droplab.lab import experiment

    real, calls = experiment.train_run, []

    def train_run(*a, **k):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(k.get("seed"))
        return real(*a, **k)

    monkeypatch.setattr(experiment, "train_run", train_run)
    assert main([*args, "--out", str(out)]) == 130
    monkeypatch.setattr(experiment, "train_run", real)


def test_resume_past_a_torn_file_names_it_and_recomputes_only_that_run(tmp_path, capsys, monkeypatch):
    from droplab.lab import experiment

    # --workers 1: the monkeypatched train_run must run in this process
    args = ["compare", "--dataset", "spiral", "--hidden", "8", "--epochs", "3", "--batch-size", "0",
            "--seeds", "2", "--lr", "0.05", "--workers", "1"]
    assert main([*args, "--quiet", "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "cut"
    _interrupt_compare(monkeypatch, out, [*args, "--quiet"], after=3)
    work = out / ".droplab-work"
    torn = work / "runs.jsonl"  # the journal of finished runs: one line per run
    lines = torn.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    torn.write_bytes(lines[0] + lines[2] + lines[1][:25])  # run 1's line cut short, as by a kill mid-write
    capsys.readouterr()

    real, trained = experiment.train_run, []

    def counting(ds, cfg, *, p, seed, **k):
        trained.append((p, seed))
        return real(ds, cfg, p=p, seed=seed, **k)

    monkeypatch.setattr(experiment, "train_run", counting)
    assert main([*args, "--out", str(out), "--resume"]) == 0
    text = capsys.readouterr().out
    assert str(torn) in text.replace("\n", "") and "damaged" in text
    assert sorted(trained) == [(0.0, 1), (0.3, 1)]  # run 1 again, and run 3 (never finished)

    def records(path):
        runs = json.loads((path / "results.json").read_text())["runs"]
        for r in runs:
            r["metrics"].pop("seconds_per_epoch")
        return runs

    assert records(out) == records(tmp_path / "whole")
    assert not work.exists()


# ----------------------------------------------------------------------------- a diverged run is a result


def test_a_diverged_run_is_recorded_and_the_command_goes_on(tmp_path, capsys, monkeypatch):
    from droplab import nn
    from droplab.lab import experiment

    real_build = experiment.build
    error = getattr(nn, "DivergenceError", FloatingPointError)

    def build(ds, cfg, *, p, seed):
        model, shape = real_build(ds, cfg, p=p, seed=seed)
        if p > 0 and seed == 1:
            def fit(*a, **k):
                exc = error("fit: the training loss became inf at epoch 2")
                exc.epoch, exc.loss = 2, float("inf")
                raise exc
            model.fit = fit
        return model, shape

    monkeypatch.setattr(experiment, "build", build)
    out = tmp_path / "div"
    assert main(["compare", *FAST[:-1], "--seeds", "2", "--workers", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 run(s) diverged" in printed
    res = json.loads((out / "results.json").read_text())  # strict JSON: no NaN, no Infinity
    bad = [r for r in res["runs"] if r.get("diverged")]
    assert len(bad) == 1 and bad[0]["diverged_epoch"] == 2 and bad[0]["metrics"] is None
    assert [row["diverged"] for row in res["summary"]] == [0, 1]
    assert res["summary"][1]["val_accuracy"]["n"] == 1


def test_a_non_finite_validation_metric_is_null_with_a_reason(tmp_path, capsys, monkeypatch):
    from droplab.lab import experiment

    real_build = experiment.build

    def build(ds, cfg, *, p, seed):
        model, shape = real_build(ds, cfg, p=p, seed=seed)
        evaluate = model.evaluate

        def bad_evaluate(X, y, loss):
            got = dict(evaluate(X, y, loss))
            if len(X) == len(ds.X_val):
                got["loss"] = float("inf")
            return got
        model.evaluate = bad_evaluate
        return model, shape

    monkeypatch.setattr(experiment, "build", build)
    out = tmp_path / "inf"
    _run([*COMMANDS["compare"], "--workers", "1", "--out", out], capsys, code=0)
    text = (out / "results.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    run = json.loads(text)["runs"][0]
    assert run["metrics"]["val_loss"] is None and run["nonfinite"] == {"val_loss": "inf"}


# ----------------------------------------------------------------------------- workers die with their parent


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _loky_workers() -> list[int]:
    """Live loky worker processes of this process (not its resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"popen_loky_posix" in cmd:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_workers_stop_when_the_command_ends(tmp_path, capsys):
    # the command does not wait for its workers' interpreters to exit, but it stops them then, not
    # after loky's idle timeout (minutes)
    _run([*COMMANDS["compare"], "--seeds", "2", "--workers", "2", "--out", tmp_path / "c"], capsys, code=0)
    deadline = time.monotonic() + 30
    while _loky_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _loky_workers() == []
    _run([*COMMANDS["compare"], "--seeds", "2", "--workers", "2", "--out", tmp_path / "d"], capsys, code=0)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sweep_workers_die_with_a_killed_parent(tmp_path):
    out = tmp_path / "sw"
    proc = _droplab("sweep", "--dataset", "spiral", "--hidden", "64", "--epochs", "300", "--batch-size", "16",
                    "--p", "0,0.1,0.2,0.3", "--seeds", "1", "--workers", "2", "--quiet", "--out", out,
                    start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_session(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the parent and both workers
    assert proc.poll() is None, proc.stderr.read()
    assert len(_session(proc.pid)) >= 3
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _session(proc.pid)
    for pid in left:  # do not leave them running after a failure
        os.kill(pid, signal.SIGKILL)
    assert left == [], "droplab workers outlived their parent"
