"""droplab.doctor.check_impl: every bug of the gallery named, nothing found on correct code.

False alarms (derived, not tuned): every statistical test of the doctor is a 5-sigma bound on
a mean of n INDEPENDENT draws (units of the noise shape times calls, or neighbouring pairs), so
a correct implementation fails one with probability P(|Z| > 5) = 5.7e-7. One run makes k <= 8
such tests (Report.tests); the 20-seed test below makes about 3,100 in all, so it fails by
chance with probability <= 3,100 * 5.7e-7 = 1.8e-3 (union bound). The bug fixtures are far
outside the bounds (e.g. the randn mask's rate 0.31 against 0.5 +- 0.014).
"""

import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from droplab import doctor, family
from droplab.doctor import _stats
from droplab.doctor._load import DoctorLoadError, load
from droplab.doctor.impl import _block_fraction_variance

torch = pytest.importorskip("torch")
import droplab.nn as nn  # noqa: E402
import droplab.torch as dt  # noqa: E402

FIX = Path(__file__).parent / "doctor_fixtures"


def fx(name: str):
    module, attr = name.split(":")
    return load(f"{FIX / module}.py:{attr}")


def _variants():
    out = [torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout]
    for spec in family.specs():  # every registered variant, both engines: none skipped by type
        out += [getattr(nn, spec.class_name), getattr(dt, spec.class_name)]
    return out


CORRECT = _variants() + ["impl_numpy:correct", "impl_numpy:classic", "impl_numpy:NNFSDropout", "impl_torch:correct",
                         "impl_torch:Correct"]


def _label(obj):
    return obj if isinstance(obj, str) else f"{obj.__module__.split('.')[0]}.{obj.__name__}"


@pytest.mark.parametrize("subject", CORRECT, ids=_label)
def test_correct_implementations_have_no_findings_over_20_seeds(subject, seed):
    obj = fx(subject) if isinstance(subject, str) else subject
    tests = 0
    for i in range(20):
        report = doctor.check_impl(obj, seed=seed + i)
        assert report.ok, (seed + i, report.lines())
        assert report.exit_code == 0
        tests += report.tests
    assert tests >= 20  # every subject is held to at least one statistical test per run


def test_every_registered_variant_is_held_to_its_own_spec():
    for spec in family.specs():
        for engine in (nn, dt):
            report = doctor.check_impl(getattr(engine, spec.class_name), seed=0)
            assert spec.class_name in report.notes[0], report.notes
            assert report.tests >= 1, (engine.__name__, spec.class_name)  # measured, not skipped by type


BUGS = [
    ("impl_numpy:randn_mask", "randn-mask", "randn mask"),
    ("impl_torch:randn_mask", "randn-mask", "randn mask"),
    ("impl_numpy:keep_for_drop", "keep-drop-mixup", "keep/drop mix-up"),
    ("impl_torch:KeepForDrop", "keep-drop-mixup", "keep/drop mix-up"),
    ("impl_numpy:nan_at_one", "p1-nan", "NaN at p = 1"),
    ("impl_numpy:NNFSNanAtOne", "p1-nan", "NaN at p = 1"),
    ("impl_numpy:float64_mask", "dtype", "float64 mask upcasts float32 activations"),
    ("impl_numpy:no_rescaling", "no-rescaling", "train/eval scale mismatch"),
    ("impl_numpy:active_in_eval", "eval-active", ""),
    ("impl_torch:NoEvalSwitch", "eval-active", ""),
    ("impl_numpy:same_mask", "same-mask", ""),
    ("impl_numpy:batch_shared", "batch-shared-mask", ""),
    ("impl_numpy:in_place", "mutates-input", ""),
    ("impl_numpy:NNFSRedrawInBackward", "backward-mask", ""),
    ("impl_numpy:raises", "raised", ""),
]


@pytest.mark.parametrize("name, code, bug", BUGS, ids=[b[0] for b in BUGS])
def test_each_bug_is_named_first(name, code, bug, seed):
    report = doctor.check_impl(fx(name), seed=seed)
    assert not report.ok and report.exit_code == 1
    first = report.ranked()[0]
    assert first.code == code, report.lines()
    assert first.bug == bug
    line = first.line()
    assert "\n" not in line and "Fix:" in line  # one line: what, measured against expected, the fix
    if first.measured:
        assert "measured" in line and "expected" in line


def test_the_randn_signature_is_phi_and_the_measurement_matches_it(seed):
    assert _stats.randn_rate(0.5) == pytest.approx(1 - 0.5 * (1 + math.erf(0.5 / math.sqrt(2))))
    assert round(_stats.randn_rate(0.5), 4) == 0.3085
    report = doctor.check_impl(fx("impl_numpy:randn_mask"), seed=seed)
    rates = [c for c in report.checks if c["check"] == "drop rate"]
    for c in rates:
        p = float(c["where"].split("=")[1])
        assert abs(c["measured"] - _stats.randn_rate(p)) <= _stats.rate_bound(_stats.randn_rate(p), c["n"])


def test_p_means_keep():
    def keep_dropout(x, keep, training=True):
        if not training or keep == 1:
            return x
        if keep == 0:
            return np.zeros_like(x)
        return x * (np.random.random(x.shape) < keep).astype(x.dtype) * x.dtype.type(1 / keep)

    assert doctor.check_impl(keep_dropout, p_means="keep", seed=1).ok
    assert doctor.check_impl(keep_dropout, seed=1).codes()[0] == "keep-drop-mixup"


def test_user_code_can_be_held_to_a_channel_spec(seed):
    def channel(x, p, training=True):
        if not training or p == 0:
            return x
        if p == 1:
            return np.zeros_like(x)
        keep = np.random.random(x.shape[:2] + (1,) * (x.ndim - 2)) >= p
        return x * keep.astype(x.dtype) * x.dtype.type(1 / (1 - p))

    assert doctor.check_impl(channel, spec="dropout2d", seed=seed).ok
    report = doctor.check_impl(fx("impl_numpy:correct"), spec="dropout2d", seed=seed)
    assert report.codes()[0] == "mask-shape"


def test_globals_are_restored():
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    doctor.check_impl(fx("impl_numpy:correct"), seed=3)
    doctor.check_impl(fx("impl_torch:randn_mask"), seed=3)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


def test_same_seed_same_report():
    a = doctor.check_impl(fx("impl_numpy:correct"), seed=11).to_dict()
    b = doctor.check_impl(fx("impl_numpy:correct"), seed=11).to_dict()
    assert a == b


def test_bad_arguments():
    with pytest.raises(TypeError, match="doctor: `obj` must be a function"):
        doctor.check_impl(42)
    with pytest.raises(ValueError, match="doctor: `p_means` must be"):
        doctor.check_impl(fx("impl_numpy:correct"), p_means="retain")
    with pytest.raises(ValueError, match="doctor: `spec` must be a registered variant"):
        doctor.check_impl(fx("impl_numpy:correct"), spec="nope")


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(DoctorLoadError, match="must be PATH_OR_MODULE:NAME"):
        load("no_colon")
    with pytest.raises(DoctorLoadError, match="is not a file"):
        load(f"{tmp_path / 'missing.py'}:f")
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_xyz\n")
    with pytest.raises(DoctorLoadError, match="raised ModuleNotFoundError"):
        load(f"{bad}:f")
    ok = tmp_path / "ok.py"
    ok.write_text("def f(x, p):\n    return x\n")
    with pytest.raises(DoctorLoadError, match="has no 'g'; it defines: f"):
        load(f"{ok}:g")
    path = list(sys.path)
    assert load(f"{ok}:f")(1, 0) == 1
    assert sys.path == path
    assert load("droplab.nn:Dropout") is nn.Dropout


def test_block_fraction_variance_is_exact():
    # 3 x 3 map, b = 2: four seed positions, enumerate all 16 seed patterns
    H = W = 3
    b, gamma = 2, 0.3
    fr, pr = [], []
    for bits in range(16):
        seeds = [(bits >> k) & 1 for k in range(4)]
        dropped = np.zeros((H, W), bool)
        for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            if seeds[k]:
                dropped[i:i + b, j:j + b] = True
        fr.append(dropped.mean())
        pr.append(np.prod([gamma if s else 1 - gamma for s in seeds]))
    fr, pr = np.array(fr), np.array(pr)
    mean = (fr * pr).sum()
    assert mean == pytest.approx(family.expected_drop_fraction(H, W, b, gamma))
    assert _block_fraction_variance(H, W, b, gamma) == pytest.approx(((fr - mean) ** 2 * pr).sum())


def test_false_alarm_rate_is_stated():
    assert _stats.TAIL == pytest.approx(5.733e-7, rel=1e-3)
    report = doctor.check_impl(torch.nn.Dropout, seed=0)
    d = report.to_dict()
    assert d["false_alarm_bound"] == pytest.approx(report.tests * _stats.TAIL)
