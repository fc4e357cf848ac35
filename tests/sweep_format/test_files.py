"""sweep_format.files: atomic writes, and the file a failed write names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sweep_format.files import all_or_none, atomic_path, write_text, write_texts, written


def test_a_full_disk_mid_write_keeps_the_old_file_and_names_the_target(tmp_path: Path) -> None:
    """A write() that finds the disk full raises an OSError naming no file (pathlib's write_text,
    Arrow's parquet writer): it reached the user as 'cannot write the output', no file named."""
    target = write_text(tmp_path / "report.md", "the earlier report")
    with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
        tmp.write_text("half of the new rep")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as f.write() raises it
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(target))
    assert target.read_text() == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]  # no temporary file left


def test_files_written_together_are_replaced_together_or_not_at_all(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk at the second file left the first one new and the second one old."""
    md, html = write_text(tmp_path / "report.md", "old md"), write_text(tmp_path / "report.html", "old html")
    real = Path.write_text

    def full(self: Path, *args, **kwargs):
        if self.name.endswith("-report.html.tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as caught:
        write_texts({md: "new md", html: "new html"})
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(html))
    assert (md.read_text(), html.read_text()) == ("old md", "old html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md"]
    monkeypatch.setattr(Path, "write_text", real)
    write_texts({md: "new md", html: "new html"})
    assert (md.read_text(), html.read_text()) == ("new md", "new html")


def test_all_or_none_holds_every_file_back_until_its_end(tmp_path: Path) -> None:
    """A report's tables, plots and pages (reports.render): each file waits in its temporary file, read
    through ``written`` (report.html embeds the plots), until the block ends; an error replaces none of
    them, however many were written, and leaves no temporary file."""
    table, plot = write_text(tmp_path / "trials.parquet", "old table"), write_text(tmp_path / "x.png", "old")
    with pytest.raises(OSError), all_or_none():
        write_text(table, "new table")
        write_text(plot, "first")
        with all_or_none():  # inside another: waits for the outer block's end
            write_text(plot, "second")
        assert table.read_text() == "old table" and written(plot).read_text() == "second"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "report.md"))
    assert (table.read_text(), plot.read_text()) == ("old table", "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.parquet", "x.png"]
    with all_or_none():
        write_text(table, "new table")
        write_text(plot, "new")
    assert (table.read_text(), plot.read_text(), written(plot)) == ("new table", "new", plot)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.parquet", "x.png"]


def test_an_error_about_another_file_keeps_its_name(tmp_path: Path) -> None:
    other = tmp_path / "source.png"
    with pytest.raises(FileNotFoundError) as caught, atomic_path(tmp_path / "out.png"):
        other.read_bytes()
    assert caught.value.filename == str(other)


def test_what_stands_where_a_file_was_expected_is_named_one_way(tmp_path: Path):
    """One wording for a path that is no regular file, whichever command meets it (a spec, a record,
    a checkpoint, weights, an image): each module had its own, and some called a FIFO 'no such file'."""
    from sweep_format.files import NOT_REGULAR, not_a_file, special_file

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    names = ("file", "link", "folder", "fifo", "dangling", "gone")
    kinds = {name: not_a_file(tmp_path / name) for name in names}
    assert kinds == {"file": "", "link": "", "folder": "a folder", "fifo": NOT_REGULAR,
                     "dangling": "a link to nothing", "gone": "no such file"}
    assert [n for n in kinds if special_file(tmp_path / n)] == ["fifo"]
    assert not_a_file("/dev/null") == NOT_REGULAR
