"""Every command's terminal output fits 80 columns (issue 16): tables drop columns in a stated
order instead of wrapping cells, progress bars fit, and fit's bar leaves a one-line summary.

Rich sizes its console from COLUMNS when the output is not a terminal, so each command runs
in-process with COLUMNS=80 and its captured output is measured line by line.
"""

import json

import pytest

from droplab.cli import main

FAST = ["--dataset", "spiral", "--epochs", "2", "--batch-size", "0", "--hidden", "8", "--lr", "0.05"]
COMMANDS = {
    "compare": ["compare", *FAST, "--seeds", "3"],
    "compare-variants": ["compare", *FAST, "--seeds", "3", "--variant", "dropout,gaussian,classic"],
    "sweep": ["sweep", *FAST, "--p", "0,0.5", "--hidden", "8/4,4", "--lr", "0.05,0.01", "--seeds", "3"],
    "uncertainty": ["uncertainty", *FAST, "--samples-list", "1,2", "--ood-samples", "10"],
    "ensemble": ["ensemble", "--dataset", "spiral", "--units", "3", "--epochs", "2", "--batch-size", "0",
                 "--max-T", "5", "--repeats", "2", "--seeds", "2"],
    "bench": ["bench", "--tiny", "--sections", "dropout,spiral,blas", "--repeats", "2"],
    **{f"study-{name}": ["study", name, "--tiny"] for name in
       ("p-choice", "where", "batchnorm-order", "cost", "textbook", "bug-gallery")},
}


def _check(text: str, width: int = 80) -> None:
    long = [line for line in text.splitlines() if len(line) > width]
    assert not long, f"{len(long)} line(s) wider than {width}:\n" + "\n".join(long)
    assert "…" not in text  # no cell cut short


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_fits_80_columns(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "out"
    assert main([*COMMANDS[name], "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    _check(printed)
    res = json.loads((out / "results.json").read_text())
    for t in res["tables"]:  # each table printed one line per row: its label starts a line
        for row in t["rows"]:
            assert any(line.startswith("│ " + row[0][:20]) or line.startswith("┃ " + row[0][:20])
                       for line in printed.splitlines()), (t["title"], row[0])


def test_report_prints_within_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*COMMANDS["compare"], "--quiet", "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "c")]) == 0
    _check(capsys.readouterr().out)


def test_a_narrow_table_drops_columns_in_the_stated_order():
    from rich.console import Console

    from droplab.lab import tables

    t = tables.table("t", ["arm", "a (%)", "b (%)", "c (%)"], [["x" * 10, "1" * 30, "2" * 30, "3" * 30]],
                     drop=["c (%)", "b (%)"])
    console = Console(width=80, record=True)
    tables.show(console, t)
    text = console.export_text()
    _check(text)
    assert "2" * 30 in text and "3" * 30 not in text and "left out at 80 columns: c (%)" in text


def test_fit_progress_fits_80_columns_and_leaves_a_summary(capsys, monkeypatch):
    from rich.console import Console

    from droplab.nn.train import _Progress

    monkeypatch.setenv("COLUMNS", "80")
    bar = _Progress(150, True)
    for _ in range(3):
        bar.update({"loss": 1.23456, "accuracy": 0.5, "val_loss": 1.3456, "val_accuracy": 0.45})
    console = Console(width=80, record=True)
    console.print(bar._bar.make_tasks_table(bar._bar.tasks))
    live = console.export_text()
    _check(live)
    assert "3/150" in live and "val_acc=0.4500" in live
    bar.close()
    summary = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert summary[-1].startswith("fit: 3 epochs in ") and "val_acc=0.4500" in summary[-1]
    _check(summary[-1])
