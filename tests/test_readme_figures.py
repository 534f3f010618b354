"""The README's figures are true: rerun each stamped experiment and compare (slow).

The figures and their commands live in ``tests/readme_figures.py``; ``make figures`` re-stamps
them after a change that moves them (new mask bits, a new default).
"""

import pytest

import readme_figures as rf


@pytest.mark.slow
@pytest.mark.parametrize("name", rf.CHECKED)
def test_readme_figures_match_a_fresh_run(name):
    stamped = rf.stamped(name)
    assert stamped, f"README.md's {name} block has no table rows"
    fresh = rf.measure(name)
    assert sorted(stamped) == sorted(arm["arm"] for arm in fresh)
    for arm in fresh:
        for column in rf.ACCURACIES:
            now, then = 100 * arm[column]["mean"], stamped[arm["arm"]][column]
            assert abs(now - then) <= rf.TOLERANCE_POINTS, (
                f"README {name}, {arm['arm']}, {column}: stamped {then:.1f}, measured {now:.1f} "
                f"(more than {rf.TOLERANCE_POINTS} points apart): run `make figures`")


def test_every_block_parses():
    text = rf.README.read_text()
    for name in rf.FIGURES:
        rows = rf.stamped(name, text)
        assert len(rows) == 2 and all(len(v) == len(rf.ACCURACIES) for v in rows.values())
        assert "Measured at commit" in text.split(f"<!-- figures:{name} -->")[1].split("<!-- /figures")[0]
