"""A report as a list of blocks (headings, paragraphs, tables, images), written as Markdown and as
one self-contained HTML file (images embedded as base64 PNG, no external files or scripts).

    doc = Document("Sweep temps")
    doc.heading("Leaderboard"); doc.table(df); doc.image(Path("report/plots/x.png"), "kNN vs x")
    md = doc.markdown(relative_to=Path("report")); html = doc.html()

Inline markup understood in both: **bold** and `code`; anything else in a text (which may come from
a spec, a record or a parquet file someone else wrote) stays text: escaped in HTML, and in Markdown
no HTML tag and no link (``md_inline``; ``md_alt`` for an image's alt text).
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sweep_format.files import written

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
table { display: block; overflow-x: auto; max-width: 100%; }  /* a wide table scrolls, not the page */
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.text { white-space: normal; text-align: left; min-width: 24em; } th.text { text-align: left; }
tr > :first-child { position: sticky; left: 0; background: #fff; }  /* in view while a table scrolls */
tr > th:first-child { background: #f4f4f4; }
/* a table wider than the page's column (html_table): smaller, headers wrapped at spaces too, prose
   narrower; nothing left out */
table.wide { font-size: .78em; } table.wide th { white-space: normal; vertical-align: bottom; }
table.wide td.text { min-width: 16em; }
/* a window narrower than the full column (1024 px: 977 px of it) gives prose the 16em too, so that a
   table that is not wide (WIDE_TABLE) fits beside it */
@media (max-width: 1196px) { td.text { min-width: 16em; } }
/* a window narrower than the 1024 px that WIDE_TABLE is counted for (800 px: a 753 px column) sets
   every table small, headers and cells wrapped at spaces where it has no room, padding narrow: there
   tables of many short numeric columns, wide or not, ran 16 to 153 px past the column (a 7-parameter
   Optuna sweep's Leaderboard, Cost, Trials; a grid's Seed power), padding a quarter of their width.
   One that does not fit even so (the Trials of 7 parameters) scrolls, its first column in view. */
@media (max-width: 1023px) {
  table { font-size: .78em; } th, td { white-space: normal; } th { vertical-align: bottom; }
  th, td { padding: .25em .3em; } td.text, table.wide td.text { min-width: 10em; }
}
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
code { background: #f4f4f4; padding: 0 .2em; }
.note { color: #666; }
"""


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text, None))

    def note(self, text: str) -> None:
        self.blocks.append(("note", text, None))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df, None))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("image", path, alt))

    def images(self) -> list[Path]:
        return [path for kind, path, _ in self.blocks if kind == "image"]

    def headings(self) -> list[str]:
        return [text for kind, _, text in self.blocks if kind == "heading"]

    # --- Markdown -------------------------------------------------------------------------
    def markdown(self, relative_to: Path) -> str:
        out = [f"# {md_inline(self.title)}", ""]
        for kind, a, b in self.blocks:
            if kind == "heading":
                out += ["#" * a + f" {md_inline(str(b))}", ""]
            elif kind in ("paragraph", "note"):
                text = md_inline(str(a))
                out += [text if kind == "paragraph" else f"*{text}*", ""]
            elif kind == "table":
                out += [md_table(a), ""]
            elif kind == "image":
                out += [f"![{md_alt(str(b))}]({Path(os.path.relpath(a, relative_to)).as_posix()})", ""]
        return "\n".join(out).rstrip() + "\n"

    # --- HTML -----------------------------------------------------------------------------
    def html(self) -> str:
        body = [f"<h1>{inline_html(self.title)}</h1>"]
        for kind, a, b in self.blocks:
            if kind == "heading":
                anchor = re.sub(r"[^a-z0-9]+", "-", str(b).lower()).strip("-")
                body.append(f'<h{a} id="{anchor}">{inline_html(str(b))}</h{a}>')
            elif kind == "paragraph":
                body.append(f"<p>{inline_html(str(a))}</p>")
            elif kind == "note":
                body.append(f'<p class="note">{inline_html(str(a))}</p>')
            elif kind == "table":
                body.append(html_table(a))
            elif kind == "image":
                data = base64.b64encode(written(a).read_bytes()).decode("ascii")  # all_or_none's too
                body.append(f'<img alt="{html.escape(str(b))}" src="data:image/png;base64,{data}">')
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                + "\n".join(body) + "\n</body>\n</html>\n")


def md_inline(text: str) -> str:
    """``text`` for Markdown: ``<`` before what could open an HTML tag or autolink as ``&lt;`` and
    ``](`` as ``]\\(`` (no inline link), newlines as spaces (no reference-link definition);
    ``p < 0.05`` and ``[CLS]`` read as written."""
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("\n", " "))
    return text.replace("](", "]\\(")


def md_alt(text: str) -> str:
    """``md_inline`` for an image's alt text, its brackets escaped too: a parameter name (from a spec
    or a parquet file) with a ``]`` ended the alt text there and put the rest of it, an ``<img
    onerror=...>`` or a link to anywhere, into report.md as Markdown."""
    return md_inline(text).replace("[", "\\[").replace("]", "\\]")


def inline_html(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def md_table(df: pd.DataFrame) -> str:
    def esc(text: str) -> str:
        return md_inline(text).replace("|", "\\|")

    header = "| " + " | ".join(esc(str(c)) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(esc(cell(v)) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


LONG_CELL = 40  # characters: a cell this long is prose (a stop reason), wrapped and left-aligned
TEXT = ' class="text"'  # such a cell's class, and its column header's


def html_cell(value: object, prose: bool) -> str:
    """A table cell: values on one line (a status, '29.81 (untrained)'); in a column of prose (``prose``:
    one of its cells is longer than LONG_CELL) every cell left-aligned and wrapped, the short ones too,
    or a column of configurations read half from the left and half from the right."""
    return f"<td{TEXT if prose else ''}>{html.escape(cell(value))}</td>"


# A table is set ``wide`` where its ``table_width`` exceeds this many characters: the 977 px column of a
# 1024 px window holds about 132 at 7.4 px each (a character with its share of the padding, at 0.9em in
# Chromium: 5.8 to 7.4 px in the tables of over 100 characters of five reports, prose at 16em). The full
# 1150 px column (a window of 1280 px) holds as many with prose at 24em. Counted against the full column
# alone (140 characters, prose at 24em), a "Which parameters matter" table of a 3-parameter ablation (139)
# was not wide and ran 35 px past the column at 1024 px, behind a scroll bar. A table wider than the
# column even when set small scrolls, its first column in view.
WIDE_TABLE = 130
PROSE_WIDTH = 32  # the characters of a prose cell at its narrowest CSS min-width (td.text: 16em)


def table_width(df: pd.DataFrame) -> int:
    """The characters one line of ``df`` takes: each column its widest cell (prose at its wrapped
    minimum, ``PROSE_WIDTH``) or header, and two for its padding."""
    width = 0
    for i, name in enumerate(df.columns):
        cells = [len(t) if len(t) <= LONG_CELL else PROSE_WIDTH for t in map(cell, df.iloc[:, i])]
        width += max([len(str(name)), *cells]) + 2
    return width


def header_html(name: object) -> str:
    """A header that may break after each '_' (``warmup_<wbr>teacher_<wbr>temp_<wbr>epochs``) where its
    table has no room for it on one line: a parameter's name is most often its column's widest text."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def html_table(df: pd.DataFrame) -> str:
    """``df`` as a table; ``wide`` (CSS) where it would not fit the page's column (``WIDE_TABLE``), a
    column of prose (a stop reason, a verdict) headed left as its cells are."""
    prose = [any(len(cell(v)) > LONG_CELL for v in df.iloc[:, i]) for i in range(df.shape[1])]
    head = "".join(f"<th{TEXT if p else ''}>{header_html(c)}</th>"
                   for c, p in zip(df.columns, prose, strict=True))
    rows = "".join("<tr>" + "".join(html_cell(v, p) for v, p in zip(row, prose, strict=True)) + "</tr>"
                   for row in df.itertuples(index=False))
    wide = ' class="wide"' if table_width(df) > WIDE_TABLE else ""
    return f"<table{wide}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
