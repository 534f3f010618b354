"""droplab study: every canned study on its tiny setting, the facts they measure, one real --quick run."""

import json
import math

import numpy as np
import pytest

from droplab import nn
from droplab.cli import main
from droplab.lab import study
from droplab.nn.norm import BatchNorm1d


def run_cli(tmp_path, name, *flags):
    out = tmp_path / name
    assert main(["study", name, "--quiet", "--out", str(out), *flags]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "study" and res["study"] == name
    assert {"droplab", "numpy"} <= set(res["versions"]) and res["reading"]
    assert (out / "table.md").read_text().startswith("**study ")  # each table titled, then its rows
    for png in out.glob("*.png"):
        assert png.stat().st_size > 1000
    assert list(out.glob("*.png"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    return res


# ----------------------------------------------------------------------------- facts, exactly or bounded

def test_randn_mask_drop_rate_is_one_minus_phi_of_keep(rng):
    for p in (0.0, 0.25, 0.5, 0.9, 1.0):
        phi = 0.5 * (1 + math.erf((1 - p) / math.sqrt(2)))
        assert study.randn_mask_drop_rate(p) == pytest.approx(1 - phi, abs=1e-15)
    assert study.randn_mask_drop_rate(1.0) == pytest.approx(0.5)
    # measured: n = 200000 independent normal draws; 5 sigma bound, false-failure probability 5.7e-7
    n, p = 200_000, 0.3
    q = study.randn_mask_drop_rate(p)
    measured = 1 - (rng.standard_normal(n) < 1 - p).mean()
    assert abs(measured - q) <= 5 * math.sqrt(q * (1 - q) / n)


def test_variance_shift_measures_dropout_inflated_bn_input(rng):
    # BN input y = x * m / keep with x ~ N(1, 1), keep = 0.5: Var_train = (s^2 + mu^2)/keep - mu^2 = 3,
    # Var_eval = 1. Sample-variance standard errors: sqrt((mu4 - sigma^4)/n) with mu4 = 37 (train; from
    # E[N(1, 4)^4] = 1 + 24 + 48 = 73 on the kept half) and mu4 = 3 (eval), averaged over F independent
    # features, so n = rows * F = 160000 draws. 5 sigma each: false-failure probability about 1e-6 in all.
    rows, feats = 20_000, 8
    X = (1 + rng.standard_normal((rows, feats))).astype(np.float64)
    model = nn.Sequential(nn.Dropout(0.5), BatchNorm1d(feats, dtype=np.float64), seed=int(rng.integers(2**31)))
    (shift,) = study.variance_shift(model, X, X)
    n = rows * feats
    assert abs(shift["train_input_var"] - 3.0) <= 5 * math.sqrt(28 / n)
    assert abs(shift["eval_input_var"] - 1.0) <= 5 * math.sqrt(2 / n)
    assert shift["running_var"] == 1.0  # untouched: measured on a copy
    assert model[1].running_var.tolist() == [1.0] * feats


def test_where_arms_start_from_the_same_weights():
    from droplab import data
    from droplab.lab import experiment

    ds = data.load("spiral", samples=20, val_samples=5)
    built = [experiment.build(ds, experiment.RunConfig(hidden=(7, 7), input_p=ip, input_layer=True), p=p, seed=3)[0]
             for ip, p in study._WHERE_ARMS and [(0.0, 0.0), (0.2, 0.0), (0.0, 0.5), (0.2, 0.5)]]
    for other in built[1:]:
        assert all(np.array_equal(x.value, y.value) for x, y in zip(built[0].parameters(), other.parameters()))


# ----------------------------------------------------------------------------- every study, tiny

def test_bug_gallery_tiny(tmp_path):
    res = run_cli(tmp_path, "bug-gallery", "--tiny")
    # the trained arms run over several seeds, read with the one rule (issue 16: one seed, no comment)
    assert {r["seeds"] for r in res["trained"]} == {2}
    assert any("no rescaling against correct inverted dropout" in line and "too few" in line
               for line in res["reading"])
    assert all(r["within"] for r in res["randn_mask"])
    assert res["unused_output"] == {"identical_to_no_dropout": True, "real_dropout_differs": True}
    assert all(r["within"] for r in res["no_rescaling"])
    assert res["p_one"]["textbook_nan_fraction"] == 1.0 and res["p_one"]["droplab_nan_fraction"] == 0.0
    assert res["p_one"]["droplab_output_all_zero"] and res["p_one"]["droplab_grad_finite_and_zero"]
    assert all(row["agrees (5 sigma)"] == "yes" for row in res["summary"])


def test_p_choice_tiny(tmp_path):
    res = run_cli(tmp_path, "p-choice", "--tiny")
    assert len(res["runs"]) == 2 * 2 * 2  # datasets x p x seeds
    assert [(r["dataset"], r["p"]) for r in res["summary"]] == [("spiral", 0.0), ("spiral", 0.5),
                                                                 ("digits", 0.0), ("digits", 0.5)]
    for row in res["summary"]:
        assert row["val_accuracy"]["n"] == 2 and row["val_accuracy"]["ci95"] is None  # n < 3: a range
    assert len({r["key"] for r in res["runs"]}) == 8


def test_where_tiny(tmp_path):
    res = run_cli(tmp_path, "where", "--tiny")
    assert [r["arm"] for r in res["summary"]] == ["none", "input (p=0.2)", "hidden (p=0.5)", "both (0.2 / 0.5)"]
    assert {(r["input_p"], r["p"]) for r in res["runs"]} == {(0.0, 0.0), (0.2, 0.0), (0.0, 0.5), (0.2, 0.5)}


def test_batchnorm_order_tiny(tmp_path):
    res = run_cli(tmp_path, "batchnorm-order", "--tiny")
    assert [r["arm"] for r in res["summary"]] == ["no dropout", "dropout before BN", "dropout after BN"]
    for r in res["runs"]:
        assert [v["layer"] for v in r["variance_shift"]] == [1, 5]
        assert all(v["running_var"] > 0 and v["eval_input_var"] > 0 for v in r["variance_shift"])
    assert "variance shift" in res["reading"][0]


def test_cost_tiny(tmp_path):
    res = run_cli(tmp_path, "cost", "--tiny")
    assert [r["width"] for r in res["summary"]] == [16, 32]
    assert all(r["ratio_value"] > 0 for r in res["summary"])
    assert all(len(r["epoch_seconds"]) == 2 for r in res["runs"])
    # one repeat: no cost is claimed (issue 16: "adds -2.61 ms per epoch", a sign that flips between runs)
    assert not any("dropout adds" in line or "dropout saves" in line for line in res["reading"])
    assert all("too few to claim" in line for line in res["reading"][:2])


def test_textbook_tiny(tmp_path):
    res = run_cli(tmp_path, "textbook", "--tiny")
    assert res["config"]["lr"] == 0.05 and res["config"]["decay"] == 5e-5 and res["config"]["p"] == 0.1
    assert [r["arm"] for r in res["summary"]] == ["no dropout", "dropout p=0.1"]
    # two seeds: no claim either way (issue 16: --quick explained a difference whose CI crossed 0)
    assert "too few to claim a difference" in res["reading"][1] and "dropout hurts here" not in " ".join(res["reading"])


def test_textbook_is_the_books_network():
    from droplab import data
    from droplab.lab import experiment

    cfg = study.textbook_config(epochs=3)
    model, _ = experiment.build(data.load("spiral", samples=10, val_samples=5), cfg, p=0.1, seed=0)
    first, head = model[0], model[3]
    assert (first.l2, first.bias_l2, first.init, head.init, head.l2) == (5e-4, 5e-4, "small", "small", 0.0)
    assert abs(float(first.weight.value.std()) - 0.01) < 0.01 * 5 * (2 / (2 * 64)) ** 0.5  # 128 draws, 5 sigma
    assert (cfg.optimizer, cfg.lr, cfg.decay, cfg.batch_size, cfg.epochs) == ("adam", 0.05, 5e-5, None, 3)
    ds = data.load("spiral")
    assert len(ds.y_train) == 3000 and len(ds.y_val) == 300  # a separately drawn validation set


def test_textbook_init_arm(tmp_path):
    res = run_cli(tmp_path, "textbook", "--tiny", "--init", "he")
    assert [r["arm"] for r in res["summary"]] == ["no dropout", "dropout p=0.1", "no dropout, he init",
                                                   "dropout p=0.1, he init"]
    assert any("he init instead of the book's 0.01*randn" in line for line in res["reading"])


def test_same_seed_same_study(tmp_path):
    a = run_cli(tmp_path, "where", "--tiny", "--seed", "4")
    b = study.run_study("where", scale="tiny", seed=4)
    assert [r["history"] for r in a["runs"]] == [r["history"] for r in b.runs]


def test_where_names_no_best_placement_within_noise(tmp_path):
    # issue 16: "best placement = none" was printed though the CIs overlapped
    res = run_cli(tmp_path, "where", "--tiny")
    assert res["reading"][0].startswith("spiral: no placement is resolved as best: highest mean")
    assert not any("best placement" in line for line in res["reading"])


# ----------------------------------------------------------------------------- errors and help

def test_unknown_study_exits_2(tmp_path, capsys):
    assert main(["study", "bug-galery", "--quiet", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "study: `name` must be one of 'p-choice'" in err and "Did you mean 'bug-gallery'?" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_run_study_rejects_a_bad_scale():
    with pytest.raises(ValueError, match=r"study: `scale` must be one of 'full', 'quick', 'tiny'; got scale='huge'"):
        study.run_study("cost", scale="huge")


def test_help_hides_tiny(capsys):
    assert main(["study", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--tiny" not in out and "batchnorm-order" in out


# ----------------------------------------------------------------------------- the real --quick path

def test_bug_gallery_quick_cli(tmp_path):
    res = run_cli(tmp_path, "bug-gallery", "--quick")
    assert res["scale"] == "quick" and res["config"]["mask_draws"] == 10**6
    assert all(row["agrees (5 sigma)"] == "yes" for row in res["summary"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["p-choice", "where", "batchnorm-order", "cost", "textbook"])
def test_every_study_quick(tmp_path, name):
    res = run_cli(tmp_path, name, "--quick")
    assert res["scale"] == "quick"
