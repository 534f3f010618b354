"""Faults a fresh-user attack found after issue 13's work: each failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from droplab import cli, nn
from droplab.errors import InvalidValueError, ResourceLimitError

SMALL = ["--dataset", "spiral", "--epochs", "1", "--seeds", "1", "--hidden", "4", "--quiet", "--workers", "1"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_force_never_replaces_a_user_file_named_like_a_droplab_output(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text('{"mine": 1}')
    (out / "learning_curves.png").write_bytes(b"mypng")
    assert cli.main(["compare", *SMALL, "--out", str(out), "--force"]) == 2
    assert "--force never replaces your files" in _one_line(capsys)
    (out / "results.json").unlink()  # the PNG is still the user's: refused when the files switch in
    assert cli.main(["compare", *SMALL, "--out", str(out), "--force"]) == 2
    assert "'learning_curves.png'" in _one_line(capsys)
    assert (out / "learning_curves.png").read_bytes() == b"mypng"


def test_force_does_not_mix_two_commands_results(tmp_path, capsys):
    out = tmp_path / "sw"
    sweep = ["sweep", "--dataset", "spiral", "--p", "0,0.3", "--epochs", "1", "--seeds", "1", "--hidden", "4",
             "--quiet", "--workers", "1", "--out", str(out)]
    assert cli.main(sweep) == 0
    before = (out / "results.json").read_bytes()
    assert cli.main(["compare", *SMALL, "--out", str(out), "--force"]) == 2
    assert "holds sweep results" in _one_line(capsys)
    assert (out / "results.json").read_bytes() == before
    assert cli.main(sweep) == 0  # the sweep is still resumable


def test_force_on_the_same_command_replaces_its_own_files(tmp_path):
    out = tmp_path / "o"
    assert cli.main(["compare", *SMALL, "--out", str(out)]) == 0
    assert cli.main(["compare", *SMALL, "--out", str(out), "--force"]) == 0
    assert json.loads((out / "results.json").read_text())["command"] == "compare"


def test_fit_refuses_epochs_above_the_documented_maximum():
    m = nn.Sequential(nn.Dense(2, 3), seed=0)
    with pytest.raises(InvalidValueError, match=r"fit: `epochs` must be an integer in \[1, 100000\]"):
        m.fit(np.zeros((5, 2), np.float32), np.zeros(5, int), loss=nn.SoftmaxCrossEntropy(),
              optimizer=nn.Adam(1e-3), epochs=10**30, verbose=False)


@pytest.mark.parametrize("build", [lambda: nn.Dense(10**12, 10**12), lambda: nn.Dense(30000, 30000),
                                   lambda: nn.Conv2d(1, 1, 12000), lambda: nn.GRU(1, 8000),
                                   lambda: nn.RNN(1, 16000), lambda: nn.Conv1d(4000, 4000, 9)])
def test_layer_constructors_share_the_model_file_parameter_budget(build):
    # the same 2**27 budget as nn.load: refused before anything is allocated
    with pytest.raises(ResourceLimitError, match=r"at most 134217728 \(2\*\*27\) parameters"):
        build()


def test_a_data_file_with_one_label_value_names_the_file_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "one.npz"
    np.savez(path, X=np.random.default_rng(0).random((60, 3)), y=np.zeros(60, int))
    out = tmp_path / "out"
    assert cli.main(["compare", "--dataset", str(path), "--epochs", "1", "--seeds", "1", "--hidden", "4",
                     "--quiet", "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert str(path) in line and "at least 2 classes" in line
    assert not out.exists()


def test_a_text_file_is_not_called_pickled(tmp_path, capsys):
    path = tmp_path / "t.npz"
    path.write_text("hello\n")
    assert cli.main(["compare", "--dataset", str(path), *SMALL[2:], "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys)
    assert "not a zip archive" in line and "pickled" not in line


def test_library_errors_are_droplab_types():
    from droplab.errors import DroplabError

    m = nn.Sequential(nn.Dense(2, 3), seed=0)
    for call in (lambda: m.fit(np.zeros((5, 2), np.float32), np.array([0, 1]), loss=nn.SoftmaxCrossEntropy(),
                               optimizer=nn.Adam(), epochs=1, verbose=False),
                 lambda: m.forward(np.zeros((4, 3), np.float32)),
                 lambda: nn.Sequential(nn.Dense(2, 3), seed=-1),
                 lambda: nn.Dropout(1.5),
                 lambda: nn.Dropout("a")):
        with pytest.raises(DroplabError):
            call()


def test_ensemble_says_when_its_networks_diverged(tmp_path, capsys):
    out = tmp_path / "e"
    assert cli.main(["ensemble", "--dataset", "spiral", "--epochs", "3", "--seeds", "1", "--units", "2", "--max-T",
                     "2", "--repeats", "1", "--head-units", "2", "--workers", "1", "--lr", "1e30",
                     "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "2 of 2 network(s) diverged" in printed
    doc = json.loads((out / "results.json").read_text())
    assert any("diverged" in line for line in doc["reading"])


def test_a_command_whose_runs_all_diverge_warns_nothing(tmp_path, capsys):
    """Every run diverging is a result, said in the readings: no library warning on stderr
    (the learning curves say so in place of an empty legend)."""
    import warnings

    out = tmp_path / "o"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["compare", "--lr", "1e6", "--epochs", "1", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert [str(w.message) for w in caught] == []
    assert "Warning" not in capsys.readouterr().err
    assert (out / "learning_curves.png").stat().st_size > 0
