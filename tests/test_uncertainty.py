"""`droplab uncertainty`: in-process runs of main(argv) on tiny configurations."""

import json

import numpy as np
import pytest

from droplab import nn
from droplab.cli import main

TINY = ["--hidden", "16", "--epochs", "2", "--batch-size", "0", "--lr", "0.05", "--samples-list", "1,3",
        "--ood-samples", "40", "--quiet"]


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["uncertainty", *TINY, "--out", str(out), *extra]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_2d_dataset_writes_results_plots_and_heat_map(tmp_path):
    out, res = _run(tmp_path, "spiral", "--dataset", "spiral")
    assert res["command"] == "uncertainty"
    assert {"command", "config", "versions", "runs", "summary", "inference", "ood"} <= set(res)
    assert {"droplab", "numpy"} <= set(res["versions"])
    assert res["config"]["samples_list"] == [1, 3] and res["config"]["trained"] is True
    assert [(r["method"], r["T"]) for r in res["inference"]] == [("deterministic", None), ("mc", 1), ("mc", 3)]
    for r in res["inference"]:
        m = r["metrics"]
        assert 0 <= m["accuracy"] <= 1 and m["nll"] >= 0 and 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 2
    assert [o["set"] for o in res["ood"]] == ["far"]
    for o in res["ood"]:
        assert o["n"] == 40 and o["T"] == 3
        assert all(0 <= v <= 1 for v in o["auroc"].values())
        assert set(o["auroc"]) == {"entropy", "mutual_information", "variation_ratio", "deterministic_entropy"}
    run = res["runs"][0]
    assert run["p"] == 0.3 and len(run["history"]["loss"]) == 2 and len(res["runs"]) == 3  # --seeds 3
    assert res["summary"][0]["ece"]["n"] == 3 and res["summary"][0]["ece"]["ci95"] is not None
    assert [s["T"] for s in res["summary"]] == [None, 1, 3]  # the rows the terminal prints
    for png in ("reliability.png", "metrics_vs_T.png", "ood_scores.png", "uncertainty_map.png"):
        assert (out / png).stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_mnist1d_uses_shuffled_and_noise_sets(tmp_path):
    out, res = _run(tmp_path, "m1d", "--dataset", "mnist1d", "--epochs", "1")
    assert [o["set"] for o in res["ood"]] == ["shuffled", "noise"]
    assert not (out / "uncertainty_map.png").exists()
    assert (out / "reliability.png").exists()


def test_is_reproducible_and_prints_tables(tmp_path, capsys):
    _, a = _run(tmp_path, "a", "--dataset", "moons", "--seed", "4")
    loud = [x for x in TINY if x != "--quiet"]
    assert main(["uncertainty", *loud, "--dataset", "moons", "--seed", "4", "--out", str(tmp_path / "b")]) == 0
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["inference"] == b["inference"] and a["ood"] == b["ood"]
    out = capsys.readouterr().out
    assert "MC dropout, T=3" in out and "AUROC" in out and "results written to" in out


def test_loads_a_saved_model(tmp_path, seed):
    from droplab import data
    from droplab.lab import models

    ds = data.load("moons")
    model = models.mlp(2, (16,), ds.classes, p=0.3, seed=seed)
    model.fit(ds.X_train, ds.y_train, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.02), epochs=3,
              verbose=False)
    path = tmp_path / "model.npz"
    model.save(path)
    out, res = _run(tmp_path, "loaded", "--dataset", "moons", "--model-file", str(path))
    assert res["config"]["trained"] is False and res["config"]["model_file"] == str(path)
    assert res["runs"][0]["history"] == {}
    det = model.predict(ds.X_val.astype(np.float32))
    assert res["inference"][0]["metrics"]["accuracy"] == pytest.approx(float((det.argmax(1) == ds.y_val).mean()))


@pytest.mark.parametrize("flag,value,message", [
    ("--samples-list", "0,5", r"uncertainty: error: `--samples-list` must be comma-separated integers in [1, "),
    ("--samples-list", "1,x", r"uncertainty: error: `--samples-list` must be comma-separated integers in [1, "),
    ("--bins", "0", r"uncertainty: error: `--bins` must be an integer in [1, 1000]; got --bins=0."),
    ("--ood-samples", "0", r"uncertainty: error: `--ood-samples` must be an integer in [1, 100000]; got --ood-samples=0."),
    ("--p", "1.5", r"uncertainty: error: `--p` must be a probability in [0, 1]; got --p=1.5."),
    ("--epochs", "0", r"uncertainty: error: `--epochs` must be an integer in [1, 100000]; got --epochs=0."),
    ("--variant", "dropot", r"Did you mean 'dropout'?"),
    ("--dataset", "spirl", r"Did you mean 'spiral'?"),
    ("--hidden", "8,x", r"`--hidden` must be comma-separated integers in [1, 8192]"),
    ("--model-file", "/nonexistent/model.npz", r"--model-file: `model_file` must be an existing model file"),
    ("--model", "/nonexistent/model.npz", r"--model-file: `model_file` must be an existing model file"),
    ("--model", "cnn", r"uncertainty: `model` must be one of 'mlp'; got model='cnn'"),
    ("--epochs", "many", r"`--epochs` must be an integer in [1, 100000]; got --epochs=many."),
])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, flag, value, message):
    out = tmp_path / "bad"
    assert main(["uncertainty", *TINY, "--dataset", "spiral", "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_model_of_the_wrong_shape_is_refused(tmp_path, capsys, seed):
    model = nn.Sequential(nn.Dense(5, 4), nn.Dropout(0.2), nn.Dense(4, 3), seed=seed)
    path = tmp_path / "wrong.npz"
    model.save(path)
    assert main(["uncertainty", *TINY, "--dataset", "spiral", "--model-file", str(path), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model-file: `model_file` must be a model taking spiral's inputs" in err


def test_deprecated_model_spelling_works_with_a_note_on_success(tmp_path, capsys, seed):
    from droplab import data
    from droplab.lab import models

    ds = data.load("moons")
    path = tmp_path / "m.npz"
    models.mlp(2, (8,), ds.classes, p=0.3, seed=seed).save(path)
    assert main(["uncertainty", *TINY, "--dataset", "moons", "--model", str(path), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err and "deprecated" in err and "--model-file" in err


def test_reading_explains_calibration_under_the_rule(tmp_path):
    # issue 16: uncertainty printed no reading of its result (MC worse calibrated than weight scaling)
    _, res = _run(tmp_path, "r", "--dataset", "moons")
    text = " ".join(res["reading"])
    assert "MC dropout (T=3)" in text and "ECE relative to weight scaling" in text
    assert "mean confidence against" in text and "confident by" in text
    assert res["tables"][0]["columns"][0] == "inference"
