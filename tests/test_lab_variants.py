"""The family in the lab: the variant registries, the CNN, RNN and GRU builders, `compare --model`."""

import importlib.util
import json

import numpy as np
import pytest

from droplab import nn
from droplab.cli import main
from droplab.lab import experiment, models

# without PyTorch, --engine torch is refused first (with how to install it)
_NEEDS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the torch extra")


def _build(model, variant, p, seed):
    if model == "mlp":
        return models.mlp(6, (8,), 3, p=p, variant=variant, seed=seed), (4, 6)
    if model == "logistic":
        return models.logistic(6, 3, p=p, seed=seed), (4, 6)
    if model == "cnn" and variant in models.SIGNAL_ONLY:  # the 1-D network on a signal
        return models.cnn((2, 12), 3, p=p, variant=variant, seed=seed), (4, 2, 12)
    if model == "cnn":
        return models.cnn((1, 8, 8), 3, p=p, variant=variant, seed=seed), (4, 1, 8, 8)
    if model == "gru":
        return models.gru(2, 5, 3, p=p, variant=variant, seed=seed), (4, 5, 2)
    return models.rnn(2, 5, 3, p=p, variant=variant, seed=seed), (4, 5, 2)


@pytest.mark.parametrize("model,variant", [(m, v) for m, reg in models.MODELS.items() for v in reg])
def test_every_registered_variant_trains_in_its_model(model, variant, rng, seed):
    net, shape = _build(model, variant, 0.3, seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = net.forward(x)
    assert y.shape == (4, 3) and net.backward(np.ones_like(y)).shape == x.shape
    dropout = [m for m in net.modules() if m.is_dropout]
    assert dropout and all(m.p == 0.3 for m in dropout)
    same, _ = _build(model, variant, 0.0, seed)  # both arms of compare start from the same weights
    assert all(np.array_equal(a.value, b.value) for a, b in zip(net.parameters(), same.parameters()))


def test_spatial_and_sequence_variants_are_the_right_layers():
    assert isinstance(models.SPATIAL_VARIANTS["dropout2d"](0.1), nn.Dropout2d)
    assert isinstance(models.SPATIAL_VARIANTS["dropblock"](0.1), nn.DropBlock2d)
    assert isinstance(models.SEQUENCE_VARIANTS["locked"](0.1), nn.LockedDropout)
    assert isinstance(models.VARIANTS["alpha"](0.1), nn.AlphaDropout)


def test_compare_cnn_on_digits_one_arm_per_variant(tmp_path):
    out = tmp_path / "cnn"
    argv = ["compare", "--model", "cnn", "--dataset", "digits", "--variant", "dropout2d,dropblock", "--p", "0.2",
            "--epochs", "1", "--seeds", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["model"] == "cnn"
    assert [s["arm"] for s in res["summary"]] == ["no dropout", "dropout2d p=0.2", "dropblock p=0.2"]
    assert [r["variant"] for r in res["runs"]] == ["dropout2d", "dropout2d", "dropblock"]


def test_rnn_run_reads_features_as_a_sequence(tmp_path, rng):
    X = rng.standard_normal((60, 12)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    out = tmp_path / "rnn"
    argv = ["compare", "--model", "rnn", "--dataset", str(tmp_path / "seq.npz"), "--variant", "locked",
            "--epochs", "2", "--seeds", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["model"] == "rnn" and len(res["runs"]) == 2
    from droplab import data

    model, shape = experiment.build(data.load(str(tmp_path / "seq.npz")),
                                    experiment.RunConfig(model="rnn", variant="locked"), p=0.3, seed=0)
    assert shape == (12, 1) and isinstance(model[1], nn.LockedDropout)


@pytest.mark.parametrize("argv,match", [
    (["--model", "cnn", "--dataset", "spiral"], r"compare: `model` must be 'mlp', 'logistic', 'rnn' or 'gru' for a "
                                                r"data set of fewer than 3 features; got model='cnn'\. spiral has 2"),
    (["--model", "cnn", "--variant", "dropout2d"], r"compare: `variant` must be one of 'dropout', 'dropout1d', "
                                                   r"'gaussian' for the CNN on a signal; got variant='dropout2d'"),
    (["--model", "cnn", "--dataset", "digits", "--variant", "dropout1d"],
     r"`variant` must be one of 'dropout', 'dropout2d', 'dropblock', 'gaussian' for the CNN on an image"),
    (["--model", "logistic", "--variant", "locked"], r"`variant` must be one of 'dropout'; got variant='locked'"),
    (["--model", "rnn", "--variant", "dropblock"], r"`variant` must be one of 'dropout', 'locked'; got "
                                                   r"variant='dropblock'"),
    (["--model", "transformer"], r"compare: `model` must be one of 'mlp', 'logistic', 'cnn', 'rnn', 'gru'; got "
                                    r"model='transformer'"),
    (["--variant", "dropout2d"], r"`variant` must be one of 'dropout', 'classic', 'gaussian', 'alpha'"),
    pytest.param(["--model", "cnn", "--engine", "torch"],
                 r"compare: `model` must be 'mlp' with --engine torch; got model='cnn'", marks=_NEEDS_TORCH),
    pytest.param(["--model", "cnn", "--backend", "torch"],
                 r"compare: `model` must be 'mlp' with --engine torch; got model='cnn'", marks=_NEEDS_TORCH),
])
def test_compare_rejects_a_model_variant_mismatch(argv, match, tmp_path, capsys):
    assert main(["compare", *argv, "--epochs", "1", "--seeds", "1", "--quiet", "--out", str(tmp_path / "x")]) == 2
    import re

    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()
