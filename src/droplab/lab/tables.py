"""Tables the lab prints and the report shows: one description, two renderings.

A table is a JSON-able dict (:func:`table`): a title, column headers with their units, rows of
cell texts, a note saying what ``±`` means, and the order in which columns are dropped when a
terminal is too narrow. Commands print it with :func:`show` (rich, fitted to the console's
width: 80 columns unless the terminal is wider or ``COLUMNS`` says otherwise) and write it into
``results.json`` under ``tables``, where ``droplab report`` renders the very same headers,
units and cells as HTML (:func:`html`).

Fitting rule: cells never wrap. While the table is wider than the console, the column first
in ``drop`` (the least important, stated by each command) is left out, and a line under the
table names what was left out (every column is in ``results.json`` and the report). If the
table is still too wide with every droppable column gone, the first column (labels) wraps.
"""

from __future__ import annotations

import html as _html
from collections.abc import Sequence
from typing import Any

__all__ = ["table", "show", "html", "width_of"]


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, note: str = "",
          drop: Sequence[str] = (), left: int = 1) -> dict[str, Any]:
    """A table description. ``drop``: headers in the order they are left out on a narrow
    terminal; ``left``: how many leading columns are labels (left-aligned)."""
    cols = [str(c) for c in columns]
    return {"title": title, "columns": cols, "rows": [[str(c) for c in r] for r in rows], "note": note,
            "drop": [d for d in drop if d in cols], "left": left}


def width_of(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """Columns a rich table with the default box and padding takes: cells + 3 per column + 1."""
    widths = [max([len(h) for h in str(c).split("\n")] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    return sum(widths) + 3 * len(widths) + 1


def _columns_that_fit(t: dict[str, Any], width: int) -> tuple[list[int], list[str]]:
    keep = list(range(len(t["columns"])))
    dropped: list[str] = []
    for name in t.get("drop", ()):
        cols = [t["columns"][i] for i in keep]
        if width_of(cols, [[r[i] for i in keep] for r in t["rows"]]) <= width:
            break
        i = t["columns"].index(name)
        if i in keep and len(keep) > 1:
            keep.remove(i)
            dropped.append(name)
    return keep, dropped


def show(console, t: dict[str, Any]) -> None:
    """Print ``t`` on a rich console, fitted to its width (see the module's rule)."""
    from rich.table import Table

    keep, dropped = _columns_that_fit(t, console.width)
    cols = [t["columns"][i] for i in keep]
    rows = [[r[i] for i in keep] for r in t["rows"]]
    fits = width_of(cols, rows) <= console.width
    out = Table(title=t["title"], title_justify="left")
    for j, i in enumerate(keep):
        is_label = i < t.get("left", 1)
        out.add_column(t["columns"][i], justify="left" if is_label else "right",
                       no_wrap=fits or not (is_label and j == 0), overflow="fold")
    for r in rows:
        out.add_row(*r)
    console.print(out)
    if t.get("note"):
        console.print(t["note"], style="dim", highlight=False, markup=False)
    if dropped:
        console.print(f"(left out at {console.width} columns: {', '.join(dropped)}; every column is in "
                      "results.json and the report)", style="dim", highlight=False, markup=False)


def html(t: dict[str, Any]) -> str:
    """The same table as HTML: its title, headers (with units), cells and note."""
    esc = _html.escape
    left = int(t.get("left", 1))
    head = "".join(f'<th class="{"l" if i < left else "r"}">{esc(c)}</th>' for i, c in enumerate(t["columns"]))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else "r"}">{esc(str(c))}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in t["rows"])
    note = f'<p class="same">{esc(t["note"])}</p>' if t.get("note") else ""
    return (f'<h3>{esc(t["title"])}</h3><table class="terminal"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{note}")
