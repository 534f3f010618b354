"""The lab's one statistics helper and its one rule for readings (issue 16), on made-up data."""

import math

import numpy as np
import pytest

from droplab.lab import readings, stats


def _runs(base, arm):
    """compare-shaped records: arm 'none' (p = 0) and 'drop' (p = 0.3), one value per seed."""
    return [{"arm": a, "p": p, "seed": s, "metrics": {"val_accuracy": v}}
            for a, p, vals in (("none", 0.0, base), ("drop", 0.3, arm)) for s, v in enumerate(vals)]


def test_summary_is_mean_and_student_t_ci_with_n():
    s = stats.summary([1.0, 2.0, 3.0])
    assert (s["mean"], s["n"], s["std"], s["kind"]) == (2.0, 3, 1.0, "ci95")
    assert s["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) * s / sqrt(n)
    assert stats.t95(1) == pytest.approx(12.7062, abs=1e-4) and stats.t95(30) == pytest.approx(2.0423, abs=1e-4)
    with pytest.raises(ValueError, match=r"t95: `df` must be a positive integer; got df=0."):
        stats.t95(0)


def test_fewer_than_three_values_give_a_range_marked_as_such():
    # issue 16: `val acc 53.3 ± 76.2 %` with 2 seeds, and an axis from -20% to 120%
    two = stats.summary([0.30, 0.766])
    assert two["ci95"] is None and two["kind"] == "range"
    assert stats.fmt(two, 100) == "53.3 (range 30.0–76.6)"
    assert stats.fmt(stats.summary([0.5]), 100) == "50.0"
    assert stats.fmt(stats.summary([]), 100) == "–"
    assert "not an interval" in stats.legend(2) and "95% CI" in stats.legend(3)


def test_rule_claims_a_real_difference():
    diffs = [0.10, 0.09, 0.11, 0.10, 0.095]
    v = stats.verdict(diffs)
    assert v.resolved and v.direction == 1 and v.n == 5 and v.needed is None
    assert abs(v.mean) > v.ci95
    line = readings.paired_sentence(_runs([0.6, 0.61, 0.62, 0.6, 0.61], [0.7, 0.70, 0.73, 0.7, 0.705]),
                                    {"arm": "drop"}, {"arm": "none"}, subject="dropout")
    assert line.startswith("dropout raised validation accuracy by 9.9 ± ") and "paired 95% CI over 5 seeds" in line


def test_rule_says_within_noise_for_a_null_difference_and_how_many_seeds_would_resolve_it():
    rng = np.random.default_rng(0)
    diffs = [0.02, -0.03, 0.015, -0.01, 0.012]
    v = stats.verdict(diffs)
    assert not v.resolved and v.direction == 0 and abs(v.mean) <= v.ci95
    s = float(np.std(diffs, ddof=1))
    # the stated formula: the smallest n with t(0.975, n-1) * s / sqrt(n) < |mean|
    n = v.needed
    assert n is not None and stats.t95(n - 1) * s / math.sqrt(n) < abs(v.mean)
    assert stats.t95(n - 2) * s / math.sqrt(n - 1) >= abs(v.mean)
    line = stats.sentence(v, subject="dropout", what="validation accuracy", scale=100, unit=" points")
    assert "within noise" in line and f"about {n} seeds would resolve" in line and "raised" not in line
    assert rng is not None


def test_rule_never_claims_with_two_seeds_however_large_the_difference():
    v = stats.verdict([0.20, 0.21])
    assert not v.resolved and v.n == 2
    line = stats.sentence(v, subject="dropout", what="validation accuracy", scale=100, unit=" points")
    assert line.startswith("dropout: validation accuracy +20.5 points over 2 seeds, too few to claim a difference")
    assert "raised" not in line and "lowered" not in line


def test_prediction_interval_of_one_more_run():
    vals = [0.70, 0.72, 0.74, 0.71]
    lo, hi = stats.prediction_interval(vals)
    s = np.std(vals, ddof=1)
    h = stats.t95(3) * s * math.sqrt(1 + 1 / 4)
    assert (lo, hi) == pytest.approx((np.mean(vals) - h, np.mean(vals) + h))
    assert stats.prediction_interval([0.7, 0.8]) is None


def test_paired_keeps_only_common_finite_seeds():
    assert stats.paired({0: 1.0, 1: 2.0, 2: None}, {0: 1.5, 1: 2.5, 2: 3.0, 3: 9.0}) == [0.5, 0.5]


def test_one_helper_in_the_lab():
    # grep-level acceptance: no command keeps its own mean_ci, _fit or _mlp; one config type, one flag
    # builder, one statistics helper; models built in droplab.lab.models only
    import pathlib
    import re

    lab = pathlib.Path(stats.__file__).parent
    sources = {p.name: p.read_text() for p in lab.glob("*.py")}
    for name, text in sources.items():
        assert not re.search(r"def (mean_ci|_fit|_mlp|t_quantile)\b", text), name
        if name != "models.py":
            assert not re.search(r"(?<!torch\.)nn\.Sequential\(", text), f"{name} builds a model outside models.py"
    assert [n for n, t in sources.items() if "def summarize(" in t] == ["readings.py"]  # over stats.summary
    assert sum("class RunConfig" in t for t in sources.values()) == 1
    assert sum("def add(parser" in t for t in sources.values()) == 1  # flags.add
    assert sum("stdtrit(" in t for t in sources.values()) == 1  # stats.t95


def test_t95_is_scipy_stats_t_ppf_bit_for_bit():
    # t95 calls scipy.special.stdtrit (cheap to import) instead of scipy.stats.t.ppf (most of a second)
    from scipy.stats import t

    dfs = [*range(1, 1001), 10**4, 10**6, 10**9]
    assert [stats.t95(d) for d in dfs] == [float(t.ppf(0.975, d)) for d in dfs]
