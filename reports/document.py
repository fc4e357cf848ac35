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

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
table { display: block; overflow-x: auto; max-width: 100%; }  /* a wide table scrolls, not the page */
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.text { white-space: normal; text-align: left; min-width: 24em; }
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
                data = base64.b64encode(Path(a).read_bytes()).decode("ascii")
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


def html_cell(value: object) -> str:
    """A table cell: values on one line (a status, '29.81 (untrained)'), prose wrapped."""
    text = cell(value)
    opening = '<td class="text">' if len(text) > LONG_CELL else "<td>"
    return f"{opening}{html.escape(text)}</td>"


def html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(html_cell(v) for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
