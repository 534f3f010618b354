"""droplab study mnist1d: the paper's four networks in the lab registry, and the study's table
(every row, the paper's figures beside, the paired difference dropout makes) end to end."""

import json

import numpy as np
import pytest

from droplab import data, nn
from droplab.cli import main
from droplab.lab import experiment, models, study


def _strict_json(text: str):
    def refuse(name):  # NaN / Infinity are not JSON
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def mnist1d():
    return data.load("mnist1d")


# ----------------------------------------------------------------------------- the architectures


def test_the_paper_cnn_reads_a_signal_and_has_the_papers_layers(mnist1d):
    cfg = experiment.RunConfig(model="cnn", variant="dropout1d")
    model, shape = experiment.build(mnist1d, cfg, p=0.3, seed=0)
    assert shape == (1, 40)  # (N, 40) signals fed as (N, 1, 40)
    convs = [m for m in model.layers if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)), (25, 25, (3,), (2,), (1,))]
    assert model[-1].weight.value.shape == (125, 10)  # the linear head on 25 x 5 features
    assert isinstance(next(m for m in model.modules() if m.is_dropout), nn.Dropout1d)
    x = mnist1d.X_train[:4].reshape((4,) + shape)
    assert model.forward(x).shape == (4, 10)
    # the same name builds the 2-D network on images
    digits, _ = experiment.build(data.load("digits"), experiment.RunConfig(model="cnn", variant="dropout2d"),
                                 p=0.3, seed=0)
    assert isinstance(digits[0], nn.Conv2d)


def test_the_paper_gru_is_bidirectional_with_a_head_on_every_step(mnist1d):
    model, shape = experiment.build(mnist1d, experiment.RunConfig(model="gru", variant="locked"), p=0.3, seed=0)
    assert shape == (40, 1)  # the 40 samples read as a sequence
    gru = model[0]
    assert isinstance(gru, nn.GRU) and gru.bidirectional and gru.return_sequences and gru.hidden_size == 6
    assert isinstance(model[1], nn.LockedDropout)
    assert model[-1].weight.value.shape == (480, 10)  # 40 steps x 2 directions x 6 units
    assert model.forward(mnist1d.X_val[:3].reshape((3,) + shape)).shape == (3, 10)


def test_the_paper_mlp_is_residual_and_logistic_is_linear(mnist1d):
    cfg = experiment.RunConfig(model="mlp", hidden=(100, 100), options={"residual": True})
    mlp, shape = experiment.build(mnist1d, cfg, p=0.3, seed=0)
    assert shape == (40,) and isinstance(mlp[3], nn.Residual)
    assert [q.value.shape for q in mlp.parameters()] == [(40, 100), (100,), (100, 100), (100,), (100, 10), (10,)]
    h = np.abs(np.random.default_rng(0).standard_normal((5, 100))).astype(np.float32)
    block = mlp[3].eval()
    assert np.array_equal(block.forward(h), h + block.block.forward(h))  # y = x + relu(Dense(x))
    logistic, _ = experiment.build(mnist1d, experiment.RunConfig(model="logistic", hidden=()), p=0.0, seed=0)
    assert [q.value.shape for q in logistic.parameters()] == [(40, 10), (10,)]


@pytest.mark.parametrize("key", list(study._MNIST1D_MODELS))
def test_both_arms_of_each_study_row_start_from_the_same_weights(key, mnist1d):
    label, fields, variant = study._MNIST1D_MODELS[key]
    cfg = experiment.RunConfig(**fields, variant=variant or "dropout", init="torch").validate("test")
    a, _ = experiment.build(mnist1d, cfg, p=0.0, seed=5)
    b, _ = experiment.build(mnist1d, cfg, p=0.3, seed=5)
    assert all(np.array_equal(x.value, y.value) for x, y in zip(a.parameters(), b.parameters()))
    assert any(m.is_dropout for m in b.modules())


def test_cnn1d_length_follows_the_conv_arithmetic():
    # L' = (L + 2*pad - k) // stride + 1 per layer: 40 -> 19 -> 10 -> 5
    assert models.cnn1d_length(40) == 5 and models.cnn1d_length(3) == 1 and models.cnn1d_length(2) == 0
    with pytest.raises(ValueError, match=r"cnn: `signal length` must be at least 3 samples for the 1-D CNN; got"):
        models.cnn1d((1, 2), 10)
    with pytest.raises(ValueError, match=r"cnn: `variant` must be one of 'dropout', 'dropout1d', 'gaussian' on "
                                         r"signals; got variant='dropblock'"):
        models.cnn1d((1, 40), 10, variant="dropblock")
    with pytest.raises(ValueError, match=r"cnn: `variant` must be one of .* on images; got variant='dropout1d'"):
        models.cnn((1, 8, 8), 10, variant="dropout1d")
    with pytest.raises(ValueError, match=r"cnn: `sample_shape` must be \(C, H, W\) for an image or \(C, L\)"):
        models.cnn((40,), 10)


def test_residual_mlp_refused_with_the_torch_engine():
    with pytest.raises(ValueError, match=r"test: `residual` must be off with --engine torch; got residual=True"):
        experiment.RunConfig(options={"residual": True}, engine="torch").validate("test")


@pytest.mark.parametrize("model", ["cnn", "gru", "logistic"])
def test_compare_runs_each_new_model_on_mnist1d(model, tmp_path):
    out = tmp_path / model
    assert main(["compare", "--model", model, "--dataset", "mnist1d", "--epochs", "1", "--seeds", "1", "--quiet",
                 "--out", str(out)]) == 0
    res = _strict_json((out / "results.json").read_text())
    assert res["config"]["model"] == model and [s["arm"] for s in res["summary"]][0] == "no dropout"
    assert all(r["metrics"]["val_accuracy"] > 0 for r in res["runs"])


# ----------------------------------------------------------------------------- the study


def test_study_mnist1d_quick_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "mnist1d"
    assert main(["study", "mnist1d", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    long = [line for line in printed.splitlines() if len(line) > 80]
    assert not long, long
    assert "…" not in printed
    res = _strict_json((out / "results.json").read_text())
    assert res["study"] == "mnist1d" and res["scale"] == "quick"
    assert res["config"]["lr"] == 0.01 and res["config"]["batch_size"] == 100 and res["config"]["p"] == 0.3
    # every row, beside the paper's and the PyTorch run's figures
    assert [r["model"] for r in res["summary"]] == ["gru", "cnn", "mlp", "logistic"]
    (table,) = res["tables"]
    assert [row[0] for row in table["rows"]] == ["GRU (locked)", "CNN (dropout1d)", "MLP (dropout)", "logistic"]
    assert [row[1] for row in table["rows"]] == ["91", "94", "68", "32"]
    for row in table["rows"]:
        assert any(line.startswith("│ " + row[0]) for line in printed.splitlines()), row[0]
    # 3 seeds per arm, 7 arms; paired differences on the three rows with a dropout arm
    assert len(res["runs"]) == 21 and all(r["metrics"] for r in res["runs"])
    assert sorted({r["seed"] for r in res["runs"]}) == [0, 1, 2]
    for row in res["summary"]:
        if row["model"] == "logistic":
            assert row["dropout"] is None and row["paired_difference"] is None
            continue
        d = row["paired_difference"]
        assert d["n"] == 3 and d["ci95"] is not None and isinstance(d["resolved"], bool)
        with_, without = (sorted((r["seed"], r["metrics"]["val_accuracy"]) for r in res["runs"]
                                 if r["model"] == row["model"] and r["dropout"] is flag) for flag in (True, False))
        assert d["mean"] == pytest.approx(np.mean([a[1] - b[1] for a, b in zip(with_, without)]))
    # one reading per row on the reference, one per dropout arm, each through the one rule
    assert len(res["reading"]) == 7
    assert sum("not comparable" in line for line in res["reading"]) == 4  # a shortened run is not judged
    assert (out / "table.md").read_text().startswith("**study mnist1d")
    assert (out / "mnist1d.png").stat().st_size > 1000


def test_study_mnist1d_tiny_is_reproducible():
    a = study.run_study("mnist1d", scale="tiny", seed=3)
    b = study.run_study("mnist1d", scale="tiny", seed=3)
    timeless = [[{k: v for k, v in r["metrics"].items() if k != "seconds_per_epoch"} for r in x.runs] for x in (a, b)]
    assert timeless[0] == timeless[1]
    assert a.config["seeds"] == [3, 4, 5]
