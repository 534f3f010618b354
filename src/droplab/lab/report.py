"""``droplab report DIR``: one self-contained HTML page from any results folder.

The page (``DIR/report.html`` unless ``--out`` names another file) holds a short reading of
the result written from the numbers, the config, the versions, every table that can be
derived from ``results.json`` (``summary``, ``runs`` and any other list or dict of records
a command adds) and every PNG/JPEG/SVG of the folder, embedded as ``data:`` URIs. It loads
nothing: no network, no external CSS or JavaScript, so it can be mailed or archived alone.

Every command writes its own ``reading`` and the ``tables`` it printed into ``results.json``;
the page shows them as written, so a table on the page has the terminal's headers, units and
figures (mean ± 95% CI with n stated, or the range when n < 3). For folders written before
that, the reading of ``compare`` and ``sweep`` is computed from the runs with the same rule
(:mod:`droplab.lab.stats`: a difference is claimed only when n >= 3 and its paired 95% CI
excludes 0), and anything else with per-row validation accuracy gets its best row named.
The raw records of ``results.json`` follow, folded. A sweep still running or interrupted
(``runs.jsonl`` without ``results.json``) is reported from the runs finished so far. ``p``
is always the drop probability (not the keep probability).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from droplab.errors import InvalidValueError
from droplab._files import atomic_open
from droplab import _validate

__all__ = ["HELP", "load_results", "reading", "render", "write_report", "table_from_records"]

HELP = "one self-contained HTML page with every table and plot of a results folder"
GENERATOR = '<meta name="generator" content="droplab report">'  # marks a page droplab wrote
WHERE = "report"
_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_TEXTS = (".md", ".txt", ".csv")
_DEFAULT_OUT = "results/report"  # the --out default the CLI gives every command: here it means DIR/report.html
SEEDED = False  # a report draws nothing at random: no --seed
OUT_HELP = ("where the page goes (default: DIR/report.html); FILE, or FOLDER/ (an existing folder, or a name ending "
            "in /) for FOLDER/report.html")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a results folder (holding results.json, or a sweep's runs.jsonl)")
    parser.add_argument("--title", default=None, help="page title (default: the command and the folder's name)")
    parser.epilog = ("--out FILE writes the page there instead of DIR/report.html; --out FOLDER/ (an existing "
                     "folder, or a name ending in /) writes FOLDER/report.html. A file droplab did not write "
                     "is never replaced, even with --force.")


def _out_file(args: argparse.Namespace, folder: Path) -> Path:
    """Where the page goes, refused with one line before anything is read or written.

    ``DIR/report.html`` by default; ``--out FILE``; ``--out FOLDER`` (existing, or written with
    a trailing slash) gives ``FOLDER/report.html``, where FOLDER must be new, empty or a results
    folder unless ``--force``. An existing page is replaced only when droplab wrote it.
    """
    from droplab.lab._results import check_out, force_flag, out_path

    if args.out in (None, _DEFAULT_OUT):
        out = folder / "report.html"
    else:
        text = str(args.out)
        out = out_path(text, WHERE)
        if text.endswith(("/", os.sep)) or out.is_dir():
            if not (out.is_dir() and folder.is_dir() and out.resolve() == folder.resolve()):
                check_out(out, WHERE, force=force_flag(args), accept=_results_folder)
            out = out / "report.html"
    if out.is_dir():
        raise _validate_error(out, "a file path for the page", "It is a folder.")
    if out.exists() and not is_droplab_page(out):
        raise _validate_error(out, "a new file, or a page droplab wrote", "A file droplab did not write is never "
                              "replaced (not even with --force); pick another --out.")
    return out


def _results_folder(path: Path) -> bool:
    """A folder a report may be written into: one holding droplab results (any command)."""
    from droplab.lab._results import owner

    return owner(path) is not None or (path / "runs.jsonl").exists()


def _validate_error(out: Path, allowed: str, hint: str) -> ValueError:
    from droplab.errors import InvalidValueError

    return InvalidValueError(_validate.message(WHERE, "out", allowed, str(out), hint))


def is_droplab_page(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is a report page droplab wrote (its generator marker, or the
    subtitle every earlier page carried)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    return GENERATOR.encode() in head or b"p is the drop probability \xc2\xb7 in tables" in head


def run(args: argparse.Namespace) -> int:
    from droplab.lab._results import file_error

    folder = Path(args.dir)
    out = _out_file(args, folder)
    try:
        page = render(folder, args.title)
    except (TypeError, KeyError, AttributeError, IndexError) as exc:  # well-formed JSON, not a results file
        raise _malformed(folder, exc) from None
    try:
        with atomic_open(out, "w", encoding="utf-8", where=WHERE, name="out") as f:
            f.write(page)
    except OSError as exc:
        raise file_error(WHERE, out, exc) from None
    path = out
    if not args.quiet:
        from rich.console import Console

        console = Console()
        for line in reading(load_results(folder)):  # rendered above: it reads
            console.print(f"- {line}", markup=False, highlight=False, overflow="fold")
        console.print(f"report written to {path}", markup=False, highlight=False, overflow="fold")
    return 0


# ---------------------------------------------------------------------------------------------
# reading the folder


def load_results(folder: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of ``folder``; for a sweep without one, its config and finished runs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidValueError(_validate.message(WHERE, "dir", "an existing results folder", str(folder)))
    res_path = folder / "results.json"
    if res_path.exists():
        try:
            res = json.loads(res_path.read_text())
        except ValueError as exc:
            raise InvalidValueError(_validate.message(WHERE, "dir", "a folder whose results.json is valid JSON",
                                               str(folder), f"{exc}.")) from None
        if not isinstance(res, dict):
            raise InvalidValueError(_validate.message(WHERE, "dir", "a folder whose results.json holds an object",
                                               str(folder)))
        return _check_shape(folder, res)
    if (folder / "runs.jsonl").exists() and (folder / "sweep.json").exists():
        return _unfinished_sweep(folder)
    raise InvalidValueError(_validate.message(WHERE, "dir", "a results folder holding results.json", str(folder),
                                       "Run a droplab command with --out there first."))


def _malformed(folder: Path, exc: BaseException) -> ValueError:
    from droplab.errors import InvalidValueError

    name = "results.json" if (folder / "results.json").exists() else "runs.jsonl"
    return InvalidValueError(_validate.message(
        WHERE, "dir", "a folder whose results files droplab wrote", str(folder),
        f"{folder / name} is valid JSON but not a droplab results file ({type(exc).__name__}: {exc})."))


def _check_shape(folder: Path, res: dict[str, Any]) -> dict[str, Any]:
    """The fields the page reads have the types droplab writes, or one line naming the file."""
    expect = {"command": (str,), "runs": (list,), "summary": (list, dict), "config": (dict,),
              "versions": (dict,), "reading": (list, str)}
    for key, types in expect.items():
        if key in res and res[key] is not None and not isinstance(res[key], types):
            kinds = " or ".join("a list" if t is list else "an object" if t is dict else "a string" for t in types)
            raise _malformed(folder, TypeError(f"`{key}` must be {kinds}, not {type(res[key]).__name__}"))
    for key in ("runs", "summary"):
        rows = res.get(key)
        if isinstance(rows, list) and not all(isinstance(r, dict) for r in rows):
            raise _malformed(folder, TypeError(f"every entry of `{key}` must be an object"))
    return res


def _unfinished_sweep(folder: Path) -> dict[str, Any]:
    from droplab.lab import sweep

    try:
        config = json.loads((folder / "sweep.json").read_text())
    except ValueError:
        raise InvalidValueError(_validate.message(WHERE, "dir", "a sweep folder with a valid sweep.json", str(folder))
                         ) from None
    runs, seen = [], set()
    for line in (folder / "runs.jsonl").read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("key") not in seen:
            seen.add(rec.get("key"))
            runs.append(rec)
    grid = config.get("grid", {})
    summary = sweep.summarize_points(runs, sweep.expand(grid)) if grid else []
    return {"command": "sweep", "unfinished": f"{len(runs)} of {config.get('runs', '?')} runs finished",
            "config": config, "runs": runs, "summary": summary,
            "best": sweep.best_points(summary, grid) if summary else []}


# ---------------------------------------------------------------------------------------------
# the reading: a few sentences from the numbers


def _reading_compare(res: Mapping) -> list[str]:
    from droplab.lab import compare

    runs = [r for r in res.get("runs", []) if isinstance(r, Mapping) and "arm" in r]
    arms: dict[str, list[Mapping]] = {}
    for r in runs:
        arms.setdefault(r["arm"], []).append(r)
    base = next((a for a, rs in arms.items() if all(r.get("p") == 0 for r in rs)), None)
    if base is None:
        return []
    order = [base] + [a for a in arms if a != base]
    return compare._reading(runs, [(a, None, None) for a in order])


def _reading_sweep(res: Mapping) -> list[str]:
    from droplab.lab import sweep

    rows_all = [r for r in res.get("summary", []) if isinstance(r, Mapping) and "p" in r]
    out = []
    diverged = sum(int(r.get("diverged") or 0) for r in rows_all)
    if diverged:
        points = [r for r in rows_all if r.get("diverged")]
        out.append(f"{diverged} run(s) diverged (non-finite training loss) at {len(points)} grid point(s); they are "
                   "left out of the statistics and counted in the summary's `diverged` column.")
    summary = [r for r in rows_all if _is_stat(r.get("val_accuracy"))]
    if not summary:
        return out
    grid = res.get("config", {}).get("grid", {})
    runs = [r for r in res.get("runs", []) if isinstance(r, Mapping)]
    return out + sweep._reading(runs, summary, grid)


def _reading_generic(res: Mapping) -> list[str]:
    rows = [r for r in res.get("summary", []) if isinstance(r, Mapping)] if isinstance(res.get("summary"), list) else []
    scored = [r for r in rows if isinstance(r.get("val_accuracy"), Mapping) and "mean" in r["val_accuracy"]]
    if len(scored) < 2:
        return []
    top = max(scored, key=lambda r: r["val_accuracy"]["mean"])
    name = ", ".join(f"{k}={_cell(v)}" for k, v in top.items() if not isinstance(v, (Mapping, list)))
    return [f"Highest mean validation accuracy: {top['val_accuracy']['mean'] * 100:.1f}% ({name})."]


def reading(res: Mapping) -> list[str]:
    """A few sentences on the result, written from the numbers in ``res`` (a results.json).

    Example:
        >>> runs = [{"arm": a, "p": p, "seed": s, "metrics": {"val_accuracy": v}}
        ...         for a, p, vals in (("no dropout", 0.0, (0.60, 0.62, 0.61)), ("dropout p=0.3", 0.3, (0.70, 0.71, 0.70)))
        ...         for s, v in enumerate(vals)]
        >>> print(reading({"command": "compare", "runs": runs})[0])  # doctest: +NORMALIZE_WHITESPACE
        dropout p=0.3 raised validation accuracy by 9.3 ± 1.4 points (paired 95% CI over 3 seeds).
    """
    out: list[str] = []
    if res.get("unfinished"):
        out.append(f"Unfinished sweep: {res['unfinished']}; rerun the same command to complete it.")
    command = res.get("command")
    own = res.get("reading")
    known = {"compare": _reading_compare, "sweep": _reading_sweep}
    if command in known and not own:  # a folder written before commands wrote their reading
        out += known[command](res)
    elif not own:  # a command that explains itself needs no guess at its best row
        out += _reading_generic(res)
    if isinstance(own, str) and own.strip():
        out.append(own.strip())
    elif isinstance(own, list):
        out += [str(x) for x in own if str(x).strip()]
    elif isinstance(own, Mapping):
        out += [f"{k}: {v}" for k, v in own.items()]
    return out


# ---------------------------------------------------------------------------------------------
# tables


def _num(v: float) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if v == 0 or (1e-3 <= abs(v) < 1e5):
        return f"{v:.4g}"
    return f"{v:.3e}"


def _is_stat(v: Any) -> bool:
    return isinstance(v, Mapping) and "mean" in v and isinstance(v["mean"], (int, float))


def _cell(v: Any) -> str:
    """One value as the text of a table cell."""
    if v is None:
        return "–"
    if isinstance(v, (int, float)):
        return _num(v)
    if _is_stat(v):  # mean ± 95% CI; with n < 3 the range, marked (never ± a standard deviation)
        err = v.get("ci95")
        if not isinstance(err, (int, float)) or not math.isfinite(err) or err <= 0 or not math.isfinite(v["mean"]):
            if isinstance(v.get("min"), (int, float)) and v.get("n", 0) >= 2:
                return f"{_num(v['mean'])} (range {_num(v['min'])}–{_num(v['max'])})"
            return _num(v["mean"])
        decimals = min(8, max(0, 1 - math.floor(math.log10(err))))  # two significant digits of the error
        return f"{v['mean']:.{decimals}f} ± {err:.{decimals}f}"
    if isinstance(v, list):
        if len(v) <= 8 and all(isinstance(x, (int, float, str)) or x is None for x in v):
            return ", ".join(_cell(x) for x in v) if v else "[]"
        text = json.dumps(v, default=str)
        return text if len(text) <= 120 else f"[{len(v)} values]"
    if isinstance(v, Mapping):
        text = json.dumps(v, default=str)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(v)


def _flatten(record: Mapping, prefix: str = "", skip: Sequence[str] = ()) -> dict[str, Any]:
    """Nested dicts become dotted columns, except mean/std dicts, which stay one cell."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k in skip:
            continue
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and not _is_stat(v) and v:
            # a run's metrics are its main columns: no prefix
            out.update(_flatten(v, "" if (k == "metrics" and not prefix) else f"{name}."))
        else:
            out[name] = v
    return out


def table_from_records(records: Sequence[Mapping], skip: Sequence[str] = ()) -> tuple[list[str], list[list[str]]]:
    """Columns (union of keys, in first-seen order) and cell texts of a list of records.

    Example:
        >>> cols, rows = table_from_records([{"p": 0.1, "val_accuracy": {"mean": 0.5, "ci95": 0.1, "n": 3}},
        ...                                  {"p": 0.3, "extra": [1, 2]}])
        >>> cols, rows
        (['p', 'val_accuracy', 'extra'], [['0.1', '0.50 ± 0.10', '–'], ['0.3', '–', '1, 2']])
    """
    flat = [_flatten(r, skip=skip) for r in records]
    cols: list[str] = []
    for f in flat:
        cols += [k for k in f if k not in cols]
    return cols, [[_cell(f.get(c)) for c in cols] for f in flat]


def _html_table(cols: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table; with several rows, columns equal in every row are moved to one line above it."""
    note = ""
    if len(rows) > 1 and len(cols) > 2:
        same = [i for i in range(len(cols)) if len({row[i] for row in rows}) == 1]
        if same and len(same) < len(cols):
            note = ('<p class="same">Same in every row: '
                    + html.escape("; ".join(f"{cols[i]} = {rows[0][i]}" for i in same)) + "</p>")
            keep = [i for i in range(len(cols)) if i not in same]
            cols, rows = [cols[i] for i in keep], [[row[i] for i in keep] for row in rows]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'{note}<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv_table(d: Mapping) -> str:
    flat = _flatten(d)
    return _html_table(["key", "value"], [[k, _cell(v)] for k, v in flat.items()], "kv")


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{html.escape(anchor)}"><h2>{html.escape(title)}</h2>{body}</section>'


def _raw_tables(res: Mapping) -> list[tuple[str, str]]:
    """(title, html) of every list or dict of records in results.json, as stored (folded on the page)."""
    out = []
    summary = res.get("summary")
    if isinstance(summary, list) and summary and all(isinstance(r, Mapping) for r in summary):
        cols, rows = table_from_records(summary)
        out.append(("summary", _html_table(cols, rows, "summary")))
    elif isinstance(summary, Mapping) and summary:
        if all(isinstance(v, Mapping) for v in summary.values()):
            cols, rows = table_from_records([{"": k, **v} for k, v in summary.items()])
            out.append(("summary", _html_table(cols, rows, "summary")))
        else:
            out.append(("summary", _kv_table(summary)))
    for key, value in res.items():
        if key in ("command", "config", "versions", "runs", "summary", "reading", "unfinished", "tables",
                   "machine"):
            continue
        if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
            cols, rows = table_from_records(value, skip=("history",))
            out.append((key, _html_table(cols, rows, key)))
        elif isinstance(value, Mapping) and value and key not in ("dropout", "spiral", "blas", "compile", "torch"):
            out.append((key, _kv_table(value)))
    runs = res.get("runs")
    if isinstance(runs, list) and runs and all(isinstance(r, Mapping) for r in runs):
        cols, rows = table_from_records(runs, skip=("history", "key"))
        out.append((f"runs ({len(runs)})", _html_table(cols, rows, "runs")))
    return out


def _tables(res: Mapping) -> list[tuple[str, str, str]]:
    """(title, html, anchor): the tables the terminal printed (as printed), then the raw records, folded."""
    from droplab.lab import tables

    out = []
    shown = [t for t in res.get("tables") or [] if isinstance(t, Mapping) and "columns" in t and "rows" in t]
    if shown:
        out.append(("Tables", "".join(tables.html(t) for t in shown), "tables"))
    raw = _raw_tables(res)
    if raw and shown:
        body = "".join(f"<details><summary>{html.escape(t)} (results.json, as stored: fractions, snake_case "
                       f"keys)</summary>{b}</details>" for t, b in raw)
        out.append(("Raw records", body, "raw"))
    else:
        out += [(t.capitalize(), b, t.split(" ")[0]) for t, b in raw]
    if isinstance(res.get("machine"), Mapping):
        out.append(("Machine", _kv_table(res["machine"]), "machine"))
    return out


# ---------------------------------------------------------------------------------------------
# the page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;
     margin-top:1.6em}
.sub{color:#666;margin-top:0}
.reading{background:#f4f8fb;border-left:4px solid #1f77b4;padding:.6em 1em}
.reading li{margin:.3em 0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;white-space:nowrap}
table.terminal th.l,table.terminal td.l{text-align:left}h3{font-size:1em;margin:1.2em 0 .2em}
th{background:#f2f2f2;position:sticky;top:0}
td:first-child,th:first-child,table.kv td,table.kv th{text-align:left}
.same{color:#555;font-size:.85em;margin:.3em 0}
table.kv td{white-space:normal;max-width:70em}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
nav a{margin-right:1em}
"""


def render(folder: str | os.PathLike, title: str | None = None) -> str:
    """The report page of ``folder`` as one HTML string (images inlined as data URIs)."""
    folder = Path(folder)
    res = load_results(folder)
    command = str(res.get("command", "results"))
    title = title or f"droplab {command}: {folder.resolve().name}"
    parts: list[tuple[str, str, str]] = []
    lines = reading(res)
    if lines:
        items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
        parts.append(("Reading", f'<ul class="reading">{items}</ul>', "reading"))
    figures = []
    for path in sorted(folder.iterdir()):
        mime = _IMAGES.get(path.suffix.lower())
        if mime and path.is_file() and not path.name.startswith("."):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figures.append(f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}">'
                           f"<figcaption>{html.escape(path.name)}</figcaption></figure>")
    if figures:
        parts.append(("Plots", "".join(figures), "plots"))
    parts += _tables(res)
    if isinstance(res.get("config"), Mapping):
        parts.append(("Config", _kv_table(res["config"]), "config"))
    if isinstance(res.get("versions"), Mapping):
        parts.append(("Versions", _kv_table(res["versions"]), "versions"))
    texts = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in _TEXTS and path.is_file() and path.stat().st_size <= 100_000:
            texts.append(f"<details><summary>{html.escape(path.name)}</summary>"
                         f"<pre>{html.escape(path.read_text(errors='replace'))}</pre></details>")
    if texts:
        parts.append(("Files", "".join(texts), "files"))
    nav = "".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for t, _, a in parts)
    body = "".join(_section(t, b, a) for t, b, a in parts)
    versions = res.get("versions", {}) if isinstance(res.get("versions"), Mapping) else {}
    sub = (f"{html.escape(str(folder))} · droplab {html.escape(str(versions.get('droplab', '?')))} · "
           "p is the drop probability · in tables, a ± b is the mean ± the 95% confidence interval (Student t) "
           "over the n seeds stated; with n &lt; 3, a (range lo–hi) is the range of the values, not an interval")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'{GENERATOR}<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>"
            f'<h1>{html.escape(title)}</h1><p class="sub">{sub}</p><nav>{nav}</nav>\n{body}\n</body></html>\n')


def write_report(folder: str | os.PathLike, out: str | os.PathLike | None = None, title: str | None = None) -> Path:
    """Render ``folder`` and write the page atomically to ``out`` (default ``folder/report.html``)."""
    folder = Path(folder)
    page = render(folder, title)
    out = Path(out) if out is not None else folder / "report.html"
    with atomic_open(out, "w", encoding="utf-8") as f:
        f.write(page)
    return out
