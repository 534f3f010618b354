"""droplab.doctor.check_torch_model / check_model: the model-level bugs, each located, and
nothing left changed afterwards. These checks are exact (graph reachability, equality of two
passes, ranks), not statistical: no false-alarm rate to state."""

import random
from pathlib import Path

import numpy as np
import pytest

from droplab import doctor
from droplab.doctor._load import load

torch = pytest.importorskip("torch")
import droplab.torch as dt  # noqa: E402

FIX = Path(__file__).parent / "doctor_fixtures"


def fx(name: str):
    module, attr = name.split(":")
    return load(f"{FIX / module}.py:{attr}")


def built(name: str, shape=(4, 8)):
    out = fx(name)()
    if isinstance(out, tuple):
        return out
    if isinstance(out, torch.nn.Module):
        return out, torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    return out, np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_transformer_eval_leak_and_unused_dropout_named_by_path(seed):
    model, x = built("models_torch:transformer_buggy")
    report = doctor.check_torch_model(model, x, seed=seed)
    found = {(f.code, f.where) for f in report.findings}
    assert found == {("eval-random", "blocks.0.attn"), ("unused-dropout", "blocks.1.ff.drop")}, report.lines()
    leak = next(f for f in report.findings if f.code == "eval-random")
    assert "F.dropout" in leak.what and "training=self.training" in leak.fix
    assert report.exit_code == 1


@pytest.mark.parametrize("name", ["models_torch:transformer_ok", "models_torch:mlp_ok", "models_torch:cnn_bn"])
def test_clean_torch_models(name, seed):
    model, x = built(name)
    assert doctor.check_torch_model(model, x, seed=seed).ok


TORCH_BUGS = [
    ("models_torch:dropout_before_bn", "dropout-before-batchnorm", "1"),
    ("models_torch:dropout_on_logits", "dropout-on-logits", "3"),
    ("models_torch:dropout2d_on_3d", "channel-input", "drop"),
    ("models_torch:broken", "raised", "model"),
]


@pytest.mark.parametrize("name, code, where", TORCH_BUGS, ids=[b[0] for b in TORCH_BUGS])
def test_torch_model_bugs(name, code, where):
    model, x = built(name)
    report = doctor.check_torch_model(model, x)
    assert [(f.code, f.where) for f in report.ranked()][:1] == [(code, where)], report.lines()


@pytest.mark.parametrize("mc, code", [("mc_with_train", "mc-batchnorm-train"), ("mc_never_on", "mc-no-dropout"),
                                      ("mc_right", None)])
def test_mc_function(mc, code):
    model, x = built("models_torch:cnn_bn")
    report = doctor.check_torch_model(model, x, mc_fn=fx(f"models_torch:{mc}"))
    assert report.codes() == ([code] if code else []), report.lines()


def test_droplab_mc_dropout_is_clean():
    model, x = built("models_torch:cnn_bn")
    dt.patch(model, dt.Dropout)
    assert doctor.check_torch_model(model, x, mc_fn=lambda m, x: dt.mc_predict(m, x, samples=4)).ok


def test_droplab_torch_channel_dropout_on_the_wrong_rank():
    model = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3), dt.Dropout2d(0.2))
    report = doctor.check_torch_model(model, torch.randn(2, 3, 8))
    assert report.codes() == ["channel-input"], report.lines()
    assert "raises" in report.findings[0].what
    ok = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), dt.Dropout2d(0.2), dt.DropBlock2d(0.1, 3), torch.nn.Flatten(),
                             dt.Dropout(0.3), torch.nn.Linear(4 * 36, 2))
    assert doctor.check_torch_model(ok, torch.randn(2, 3, 8, 8)).ok


def test_torch_model_is_restored():
    model, x = built("models_torch:cnn_bn")
    model[4] = dt.Dropout(0.5, seed=0)
    model.train()
    model[1].eval()  # a mixed state, restored as it was
    out = model(x).sum()
    out.backward()
    state = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    grads = [q.grad.clone() for q in model.parameters()]
    modes = [m.training for m in model.modules()]
    counter = model[4].counter
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    rngs = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    doctor.check_torch_model(model, x, mc_fn=fx("models_torch:mc_with_train"))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in state.items())
    assert all(torch.equal(g, q.grad) for g, q in zip(grads, model.parameters()))
    assert [m.training for m in model.modules()] == modes
    assert model[4].counter == counter
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert (random.getstate(), torch.equal(torch.get_rng_state(), rngs[2])) == (rngs[0], True)
    assert np.array_equal(np.random.get_state()[1], rngs[1])


# ------------------------------------------------------------------------------ droplab.nn


@pytest.mark.parametrize("name", ["models_nn:mlp_ok", "models_nn:bn_model"])
def test_clean_nn_models(name):
    model, x = built(name, (16, 8))
    assert doctor.check_model(model, x).ok


NN_BUGS = [
    ("models_nn:dropout_before_bn", "dropout-before-batchnorm", "1"),
    ("models_nn:dropout_on_logits", "dropout-on-logits", "3"),
    ("models_nn:unused_dropout", "unused-dropout", "drop"),
    ("models_nn:eval_random", "eval-random", "2"),
    ("models_nn:dropout2d_on_3d", "channel-input", "1"),
]


@pytest.mark.parametrize("name, code, where", NN_BUGS, ids=[b[0] for b in NN_BUGS])
def test_nn_model_bugs(name, code, where):
    model, x = built(name, (16, 8))
    report = doctor.check_model(model, x)
    assert [(f.code, f.where) for f in report.ranked()] == [(code, where)], report.lines()


@pytest.mark.parametrize("mc, code", [("mc_with_train", "mc-batchnorm-train"), ("mc_right", None)])
def test_nn_mc_function(mc, code):
    model, x = built("models_nn:bn_model", (16, 8))
    report = doctor.check_model(model, x, mc_fn=fx(f"models_nn:{mc}"))
    assert report.codes() == ([code] if code else []), report.lines()


def test_nn_model_is_restored():
    model, x = built("models_nn:bn_model", (16, 8))
    model.forward(x)  # a training step's state: running statistics moved, a counter advanced
    bn, drop = model.layers[1], model.layers[3]
    arrays = [bn.running_mean.copy(), bn.running_var.copy()] + [q.value.copy() for q in model.parameters()]
    refs = (bn.running_mean, bn.running_var)
    counter, tracked = drop.counter, bn.num_batches_tracked
    doctor.check_model(model, x, mc_fn=fx("models_nn:mc_with_train"))
    now = [bn.running_mean, bn.running_var] + [q.value for q in model.parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(arrays, now))
    assert bn.running_mean is refs[0] and bn.running_var is refs[1]  # the same arrays, restored in place
    assert drop.counter == counter and bn.num_batches_tracked == tracked
    assert all(m.training for m in model.modules())
    assert not any("forward" in vars(m) for m in model.modules())
    # the model still trains as before: fused blocks and backward work
    y = model.forward(x)
    assert model.backward(np.ones_like(y)).shape == x.shape
