"""report.md / report.html blocks (reports.document): how a table reads in a browser."""

from __future__ import annotations

import re

import pandas as pd

from reports.document import CSS, Document, html_table


def test_short_cells_stay_on_one_line_and_prose_wraps_left_aligned() -> None:
    """A Trials table with one long stop reason (a CUDA error of 200 characters): the browser gave
    the reason column the width, wrapped 'stopped early', '29.81 (untrained)' and the headers onto
    two lines each, and right-aligned the reason's lines into a ragged block."""
    reason = ("RuntimeError: CUDA error: an illegal memory access was encountered. CUDA kernel errors "
              "might be asynchronously reported at some other API call (after 2 retries by Ray)")
    table = html_table(pd.DataFrame({"trial": ["a", "b"], "status": ["stopped early", "errored"],
                                     "kNN top-1 (%)": ["39.26", "29.81 (untrained)"],
                                     "stop reason": ["", reason]}))
    cells = re.findall(r"<td( class=\"text\")?>([^<]*)</td>", table)
    assert [text for cls, text in cells if cls] == [reason]
    assert re.search(r"th, td \{[^}]*white-space: nowrap", CSS)
    assert re.search(r"td\.text \{[^}]*white-space: normal[^}]*text-align: left", CSS)


def test_an_image_alt_text_from_the_folder_stays_text_in_markdown(tmp_path) -> None:
    """The alt text of a parameter's plot (`kNN top-1 vs NAME`, NAME from a spec or a parquet file)
    went into report.md as it is: a `]` in the name ended the image there, and the rest (an
    `<img onerror=...>`, an image loaded from anywhere) was Markdown of its own."""
    name = "x](https://evil.example/p.png) <img src=x onerror=alert(1)> [y"
    doc = Document("t")
    doc.image(tmp_path / "plots" / "x.png", f"kNN top-1 vs {name}")
    [line] = [line for line in doc.markdown(relative_to=tmp_path).splitlines() if line.startswith("![")]
    assert line == ("![kNN top-1 vs x\\]\\(https://evil.example/p.png) &lt;img src=x onerror=alert(1)> \\[y]"
                    "(plots/x.png)")


def test_a_table_wider_than_the_page_is_set_small_with_wrapping_headers() -> None:
    """paper.yaml's Trials table (3 parameters and a stop reason) ran 27 px past report.html's 1150 px
    column at a 1280 px window: its last column, the stop reason, was cut off behind a scroll bar."""
    from reports.document import WIDE_TABLE, table_width

    reason = "teacher entropy 0.01 for 3 epochs (collapse)"
    trials = pd.DataFrame({"trial": ["a000"], "status": ["collapsed"], "teacher_temp": [0.08],
                           "center_momentum": [0.9], "out_dim": [1024], "repeat": [0],
                           "kNN top-1 (%)": ["10.83"], "best (%)": ["27.43"], "epochs run": ["8/8"],
                           "stop reason": [reason]})
    assert table_width(trials) > WIDE_TABLE
    table = html_table(trials)
    assert table.startswith('<table class="wide">')
    assert "<th>center_<wbr>momentum</th>" in table  # a parameter's name may break after its '_'
    assert '<th class="text">stop reason</th>' in table  # headed left, as its wrapped cells are
    assert re.search(r"table\.wide \{[^}]*font-size", CSS)
    assert re.search(r"table\.wide th \{[^}]*white-space: normal", CSS)
    assert re.search(r"tr > :first-child \{[^}]*position: sticky", CSS)  # row labels stay while it scrolls
    narrow = html_table(trials[["trial", "status", "kNN top-1 (%)"]])
    assert narrow.startswith("<table><thead>") and "class=\"text\"" not in narrow
