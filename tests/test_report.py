"""`droplab report`: a self-contained page per results folder, checked in headless Chromium."""

import json
import os
import re
import shutil
import subprocess

import pytest

from droplab.cli import main
from droplab.lab import report

SMALL = ["--dataset", "spiral", "--hidden", "8", "--epochs", "2", "--batch-size", "0", "--lr", "0.05", "--quiet"]

# Written by the test into a copy of the page, never by droplab: once every image has loaded,
# list each <img>'s naturalWidth (0 = not decoded) and the ids of the tables.
PROBE = """<script>window.addEventListener("load", () => {
  const o = document.createElement("pre"); o.id = "probe";
  o.textContent = JSON.stringify({widths: [...document.images].map(i => i.naturalWidth),
                                  tables: [...document.querySelectorAll("section")].map(s => s.id)});
  document.body.appendChild(o);
});</script>"""


def _chromium():
    for name in (os.environ.get("DROPLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _render_in_browser(page, tmp_path):
    """Open ``page`` in headless Chromium; returns what the probe wrote."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI") == "true":  # CI installs it (make test runs `make browser` there)
            pytest.fail("chromium not found in CI: `make browser` should have installed it")
        pytest.skip("the report's browser test needs Chromium: run `make browser` (as root) to enable it")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", probed.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert found, f"chromium rendered no probe (rc={r.returncode}): {r.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _self_contained(page_text):
    # nothing fetched: no http(s) or protocol-relative URLs, no external stylesheet or script
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page_text)
    assert "<link" not in page_text and "<script" not in page_text and "url(" not in page_text
    assert "@import" not in page_text


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["compare", *SMALL, "--seeds", "2", "--p", "0.3", "--out", str(root / "cmp")]) == 0
    assert main(["sweep", *SMALL, "--p", "0,0.5", "--hidden", "8/4", "--seeds", "2", "--out", str(root / "sw")]) == 0
    # a results folder of a command the report knows nothing about (e.g. a later `droplab study`)
    other = root / "other"
    other.mkdir()
    from droplab.lab.plots import subplots

    fig, ax = subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    fig.savefig(other / "curve.png")
    (other / "results.json").write_text(json.dumps({
        "command": "mystery", "config": {"units": 4, "nested": {"a": 1}}, "versions": {"droplab": "0"},
        "summary": {"weight scaling": {"error": 0.1, "nll": 0.3}, "mc T=50": {"error": 0.11, "nll": 0.31}},
        "estimates": [{"T": 1, "curve": list(range(100))}, {"T": 2, "curve": list(range(100))}],
        "reading": "Weight scaling matched 50 MC samples.",
    }))
    return root


def test_compare_report_in_chromium(folders, tmp_path):
    assert main(["report", str(folders / "cmp"), "--quiet"]) == 0
    page = folders / "cmp" / "report.html"
    text = page.read_text()
    _self_contained(text)
    assert text.count("<img") == 2 and text.count('src="data:image/png;base64,') == 2  # both plots, inline
    for title in ("Reading", "Tables", "Raw records", "Config", "Versions"):
        assert f"<h2>{title}</h2>" in text
    assert "runs (4)" in text
    # the terminal's table, with its headers and units (issue 16: snake_case and fractions on the page)
    assert "<th class=\"r\">val acc (%)</th>" in text and "mean ± 95% CI (Student t)" not in text  # n = 2
    assert "a range, not an interval" in text
    assert re.search(r"dropout p=0.3: validation accuracy [+-]\d+\.\d points over 2 seeds, too few to claim", text)
    probe = _render_in_browser(page, tmp_path)
    assert len(probe["widths"]) == 2 and all(w > 0 for w in probe["widths"]), probe
    assert {"reading", "plots", "tables", "raw", "config", "versions"} <= set(probe["tables"])


def test_sweep_report_in_chromium(folders, tmp_path):
    assert main(["report", str(folders / "sw"), "--quiet"]) == 0
    page = folders / "sw" / "report.html"
    text = page.read_text()
    _self_contained(text)
    assert "highest mean validation accuracy for hidden=8:" in text and "for hidden=4:" in text
    shown = re.search(r'<section id="tables">(.*?)</section>', text, re.S).group(1)
    assert shown.count("<tr>") == 1 + 4  # header + one row per grid point
    assert "runs (8)" in text
    probe = _render_in_browser(page, tmp_path)
    assert len(probe["widths"]) == 2 and all(w > 0 for w in probe["widths"]), probe
    assert {"tables", "raw", "config"} <= set(probe["tables"])


def test_unknown_command_report_is_generic(folders, tmp_path):
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["report", str(folders / "other"), "--out", str(out), "--quiet"]) == 0
    assert not (folders / "other" / "report.html").exists()
    text = out.read_text()
    _self_contained(text)
    assert "Weight scaling matched 50 MC samples." in text
    assert "<td>weight scaling</td>" in text and "<td>mc T=50</td>" in text  # dict-of-dicts summary as rows
    assert "<h2>Estimates</h2>" in text and "[100 values]" in text
    assert "<td>nested.a</td>" in text
    probe = _render_in_browser(out, tmp_path)
    assert probe["widths"] and all(w > 0 for w in probe["widths"]), probe


def test_unfinished_sweep_is_reported_from_its_runs(folders, tmp_path):
    sw = tmp_path / "sw"
    shutil.copytree(folders / "sw", sw)
    (sw / "results.json").unlink()
    lines = (sw / "runs.jsonl").read_bytes().splitlines(keepends=True)
    (sw / "runs.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][:40])  # 5 runs and a torn line
    res = report.load_results(sw)
    assert len(res["runs"]) == 5 and res["unfinished"] == "5 of 8 runs finished"
    assert (sw / "runs.jsonl").read_bytes().endswith(lines[5][:40])  # the report only reads
    path = report.write_report(sw)
    assert "Unfinished sweep: 5 of 8 runs finished" in path.read_text()


def test_compare_reading_from_known_numbers():
    # paired differences 0.10, 0.09, 0.10: mean 9.67 points, s = 0.00577, t(0.975, 2) = 4.303
    # -> CI half-width 4.303 * 0.5774 / sqrt(3) = 1.43 points
    runs = [{"arm": a, "p": p, "seed": s, "metrics": {"val_accuracy": v, "val_loss": 1.0 - v, "gap": 0.0,
                                                      "train_accuracy": 0.99}}
            for a, p, vals in (("no dropout", 0.0, (0.60, 0.62, 0.61)), ("dropout p=0.3", 0.3, (0.70, 0.71, 0.71)))
            for s, v in enumerate(vals)]
    lines = report.reading({"command": "compare", "runs": runs})
    assert lines[0] == "dropout p=0.3 raised validation accuracy by 9.7 ± 1.4 points (paired 95% CI over 3 seeds)."
    assert lines[1].startswith("dropout p=0.3 lowered validation loss by 0.097")
    runs[3]["metrics"]["val_accuracy"] = 0.40  # now two seeds up, one down 0.20: within noise
    assert "within noise" in report.reading({"command": "compare", "runs": runs})[0]
    two = [r for r in runs if r["seed"] < 2]  # n = 2: never a claim, whatever the numbers
    assert "too few to claim a difference" in report.reading({"command": "compare", "runs": two})[0]


def test_table_cells():
    cols, rows = report.table_from_records([{"a": 1, "s": {"mean": 0.5, "std": 0.01, "ci95": 0.0123}, "h": None,
                                             "m": {"x": 2}, "r": {"mean": 0.5, "n": 2, "ci95": None, "min": 0.4,
                                                                  "max": 0.6, "std": 0.14}}])
    assert cols == ["a", "s", "h", "m.x", "r"] and rows == [["1", "0.500 ± 0.012", "–", "2", "0.5 (range 0.4–0.6)"]]


def test_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "report: `dir` must be an existing results folder; got dir=" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path)]) == 2
    assert "report: `dir` must be a results folder holding results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "a folder whose results.json is valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(ValueError, match=r"report: `dir` must be an existing results folder"):
        report.render(tmp_path / "nope")


def test_sweep_reading_counts_diverged_runs():
    summary = [{"lr": 1e30, "p": 0.0, "diverged": 2, "val_accuracy": None},
               {"lr": 0.05, "p": 0.0, "diverged": 0, "val_accuracy": {"mean": 0.5, "std": 0.0, "n": 2, "ci95": None}},
               {"lr": 0.05, "p": 0.5, "diverged": 0, "val_accuracy": {"mean": 0.6, "std": 0.0, "n": 2, "ci95": None}}]
    res = {"command": "sweep", "config": {"grid": {"lr": [1e30, 0.05], "p": [0.0, 0.5]}}, "summary": summary,
           "runs": []}
    lines = report.reading(res)
    assert lines[0].startswith("2 run(s) diverged (non-finite training loss) at 1 grid point(s)")
    assert lines[1].startswith("highest mean validation accuracy for lr=0.05: p = 0.5, 60.0% (n = 2)")


def test_generic_reading_names_the_best_row_unless_the_command_explains_itself():
    summary = [{"arm": "a", "val_accuracy": {"mean": 0.5, "std": 0.01}},
               {"arm": "b", "val_accuracy": {"mean": 0.6, "std": 0.02}}]
    assert report.reading({"command": "mystery", "summary": summary}) == [
        "Highest mean validation accuracy: 60.0% (arm=b)."]
    assert report.reading({"command": "mystery", "summary": summary, "reading": ["One.", "Two."]}) == ["One.", "Two."]
