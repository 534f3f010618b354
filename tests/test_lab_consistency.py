"""The lab speaks one language (issue 16): one meaning per flag, --seed and --quick wherever they
apply, the same folder permissions and file names from every command, one way to print "±",
plot axes within the data's possible range, and report pages that show the terminal's tables."""

import json
import os
import re
import stat

import pytest

from droplab import cli
from droplab.cli import main

FAST = ["--dataset", "spiral", "--epochs", "1", "--batch-size", "0", "--hidden", "4", "--quiet"]
COMMANDS = {
    "compare": ["compare", *FAST, "--seeds", "3"],
    "sweep": ["sweep", *FAST, "--p", "0", "--seeds", "1"],
    "uncertainty": ["uncertainty", *FAST, "--seeds", "1", "--samples-list", "1", "--ood-samples", "5"],
    "ensemble": ["ensemble", "--dataset", "spiral", "--units", "2", "--epochs", "1", "--batch-size", "0",
                 "--max-T", "2", "--repeats", "1", "--seeds", "1", "--quiet"],
    "study": ["study", "cost", "--tiny", "--quiet"],
    "bench": ["bench", "--tiny", "--sections", "dropout", "--repeats", "1", "--quiet"],
}


def _help(capsys, name):
    assert main([name, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


LAB = [name for name, (module, _) in cli.COMMANDS.items() if module.startswith("droplab.lab.")]


@pytest.mark.parametrize("name", LAB)
def test_seed_and_quick_wherever_they_apply(capsys, name):
    text = _help(capsys, name)
    if name == "report":  # a report draws nothing at random and has no run length
        assert "--seed" not in text and "--quick" not in text
    else:
        assert "--seed SEED" in text and "--quick" in text


def test_report_refuses_seed(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--seed", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_help_states_the_real_out_defaults(capsys):
    assert "results/study-NAME" in _help(capsys, "study")
    assert "DIR/report.html" in _help(capsys, "report")
    assert "(default: results/compare)" in _help(capsys, "compare")


@pytest.mark.parametrize("name", ["compare", "sweep", "uncertainty"])
def test_one_meaning_per_flag(capsys, name):
    text = _help(capsys, name)
    assert "--model" not in text or "architecture" in text
    assert "--backend {loky,dask,ray}" in text and "--address" in text and "--workers" in text


def test_csv_label_error_names_the_flag(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(12)))
    assert main(["compare", "--dataset", str(path), "--label", "lab", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--label label" in err and "label='label'" not in err and err.count("\n") == 1


def test_every_command_writes_the_same_permissions_under_a_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        for name, argv in COMMANDS.items():
            out = tmp_path / name
            assert main([*argv, "--out", str(out)]) == 0, name
            assert stat.S_IMODE(out.stat().st_mode) == 0o750, name
            for f in out.iterdir():
                if f.is_file():
                    assert stat.S_IMODE(f.stat().st_mode) == 0o640, (name, f.name)
            assert (out / "results.json").exists()
            res = json.loads((out / "results.json").read_text())
            assert {"command", "config", "versions", "runs", "summary", "tables", "reading"} <= set(res) or \
                name == "bench", name
    finally:
        os.umask(old)


def test_compare_states_mean_and_95_ci_with_n(tmp_path, capsys):
    # issue 16: compare showed ± std while sweep and the studies showed ± 95% CI
    out = tmp_path / "c"
    assert main([*(a for a in COMMANDS["compare"] if a != "--quiet"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean ± 95% CI (Student t), n = 3" in printed and "std" not in printed
    res = json.loads((out / "results.json").read_text())
    va = res["summary"][0]["val_accuracy"]
    assert va["n"] == 3 and va["ci95"] is not None and va["kind"] == "ci95"
    assert res["tables"][0]["note"].startswith("mean ± 95% CI")


def test_plot_axes_stay_within_the_possible_range():
    # issue 16: p-choice --quick drew an accuracy axis from -20% to 120%
    from droplab.lab.plots import clip, errors, subplots

    fig, ax = subplots(figsize=(6.4, 4.8))
    m, lo, hi = errors({"mean": 0.533, "n": 2, "ci95": None, "min": 0.30, "max": 0.766}, 100)
    assert (round(m, 1), round(lo, 1), round(hi, 1)) == (53.3, 23.3, 23.3)  # the range, not 76.2
    ax.errorbar([0], [50], yerr=[[70], [70]])
    clip(ax, "accuracy")
    assert ax.get_ylim()[0] >= 0 and ax.get_ylim()[1] <= 100


@pytest.mark.parametrize("name", ["compare", "sweep", "uncertainty", "ensemble"])
def test_commands_import_neither_pyplot_nor_scipy_stats(tmp_path, name):
    # each import costs a large part of a second of every command: figures come from matplotlib's
    # object-oriented API (plots.subplots), the t quantile from scipy.special (stats.t95)
    import subprocess
    import sys

    argv = [*COMMANDS[name], "--out", str(tmp_path / "o")]
    code = (f"import sys; from droplab.cli import main; assert main({argv!r}) == 0; "
            "print(sorted(m for m in ('matplotlib.pyplot', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[-2] == "[]"
    assert any(p.suffix == ".png" for p in (tmp_path / "o").iterdir())


def test_the_bench_page_shows_tables_not_a_key_value_dump(tmp_path, capsys):
    out = tmp_path / "b"
    assert main([*COMMANDS["bench"], "--out", str(out)]) == 0
    assert main(["report", str(out), "--quiet"]) == 0
    page = (out / "report.html").read_text()
    assert "<h3>dropout throughput, float32</h3>" in page and "[17 values]" not in page
    assert re.search(r'<th class="r">droplab faster</th>', page)
