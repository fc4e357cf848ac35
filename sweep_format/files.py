"""How every file of a sweep folder and of a run is written: atomically.

The content goes to a temporary file in the target's folder, then ``os.replace`` renames it over the
target (atomic on POSIX for one file system). A reader, or a writer killed at any moment, never sees
half a file; a failed write (disk full, read-only) leaves the previous file intact and removes the
temporary one. Trial records, checkpoints, parquet tables and report pages all go through here.
Files that must agree (a report's tables, plots and pages) are written ``all_or_none``: each waits in
its temporary file until the last is written, so a failure leaves the previous set whole.

    with atomic_path(Path("run/checkpoint.pt")) as tmp:
        torch.save(state, tmp)
    write_json(Path("runs/temps/trials/a1.json"), record)
    with all_or_none():
        write_text(Path("report/report.md"), md); write_text(Path("report/report.html"), html)

Their JSON files are read back with ``loads``: any text that is not JSON is a ValueError.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sweep_format.text import printable

# The files ``all_or_none`` holds back: each target with the temporary file that holds its content
HELD: ContextVar[dict[Path, Path] | None] = ContextVar("held", default=None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (``.XXXX-NAME.tmp``, unique per writer); on success it replaces
    ``path`` (inside ``all_or_none``: when that ends), on any error it is removed (an OSError naming it,
    or naming no file, is raised naming ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(prefix=".", suffix=f"-{path.name}.tmp", dir=path.parent)
    except OSError as exc:  # a read-only or full disk: named by the file to write, as below
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    tmp, held = Path(name), HELD.get()
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; sweep folders are shared and handed around
        yield tmp
        if held is None:
            replace(tmp, path)
        else:  # all_or_none replaces it; a second write of the same file supersedes the first
            if (earlier := held.pop(path, None)) is not None:
                earlier.unlink(missing_ok=True)
            held[path] = tmp
    except OSError as exc:
        if (renamed := named(exc, tmp, path)) is exc:
            raise
        raise renamed from exc
    finally:
        if held is None or held.get(path) != tmp:
            tmp.unlink(missing_ok=True)


def named(exc: OSError, tmp: Path, path: Path) -> OSError:
    """``exc`` naming the file it failed to write (``path``), not its temporary one; nor nothing: a write()
    or close() that finds the disk full (pathlib's write_text, Arrow's parquet writer) raises an OSError
    without a file name, and the user was told "cannot write the output"."""
    if exc.filename not in (str(tmp), tmp, None) or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))


def replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if (renamed := named(exc, tmp, path)) is exc:
            raise
        raise renamed from exc


@contextlib.contextmanager
def all_or_none() -> Iterator[None]:
    """Every file written inside (``atomic_path``) waits in its temporary file until the block ends
    without error, then replaces its target, in the order they were written (a report's pages last);
    an error replaces none and removes them all. A full disk halfway through a report left its new tables
    and plots beside pages that described the old ones; now a reader sees the old report or the new one.
    Inside an enclosing ``all_or_none``, its files wait for the enclosing one's end."""
    if HELD.get() is not None:
        yield
        return
    held: dict[Path, Path] = {}
    token = HELD.set(held)
    try:
        yield
        while held:  # renames take no new space: a full disk stops none of them
            path, tmp = next(iter(held.items()))
            replace(tmp, path)
            del held[path]
    finally:
        HELD.reset(token)
        for tmp in held.values():
            tmp.unlink(missing_ok=True)


def written(path: str | os.PathLike) -> Path:
    """The file that holds ``path``'s newest content: its temporary file while ``all_or_none`` holds it
    back (report.html embeds the plots written beside it), else ``path``."""
    return (HELD.get() or {}).get(Path(path), Path(path))


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_texts(texts: Mapping[Path, str]) -> None:
    """Each text to its file, ``all_or_none``: a write that fails (a full disk) replaces none, so they
    never come from different runs (a report.md of this run beside the report.html of the last, which
    the user opens)."""
    with all_or_none():
        for path, text in texts.items():
            write_text(path, text)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """JSON (NaN and infinities as JavaScript's literals, which Python's json reads back)."""
    return write_text(path, json.dumps(data, allow_nan=True))


def loads(data: str | bytes) -> Any:
    """``json.loads`` of a file's text, where text nested deeper than the parser can recurse (a
    hand-made ``[[[[...``) is a ValueError like any other text that is not JSON, not a RecursionError:
    every reader of a folder's JSON files names the file in one line when it catches ValueError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


WRITES = "ablate writes and deletes files only inside its own folders"  # why ``linked`` refuses a link
READS = "ablate reads a sweep only from its own folder"  # ... in a folder it only reads


def linked(folder: str | os.PathLike, names: Iterable[str], inside: Iterable[str] = (),
           why: str = WRITES) -> str:
    """"" when none of ``folder``'s entries ``names``, nor any entry of its sub-folders ``inside``,
    is a symbolic link; else one line naming the first. A folder written elsewhere (downloaded,
    shared) could link them anywhere, and ablate writes, truncates and deletes files there (``why``:
    ``WRITES``), or would read another folder's files as this one's (``READS``)."""
    folder = Path(folder)
    links = [folder / n for n in names if (folder / n).is_symlink()]
    for name in inside:
        sub = folder / name
        if sub.is_dir() and not sub.is_symlink():
            with contextlib.suppress(OSError):
                links += sorted(entry for entry in sub.iterdir() if entry.is_symlink())
    if not links:
        return ""
    more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
    # names and a target the folder's author chose: printed without terminal escapes
    link, target, where = printable(str(links[0])), printable(os.readlink(links[0])), printable(str(folder))
    return f"{link}: a symbolic link (to {target}){more} inside {where}; {why}: replace the link with a " \
           "copy of what it points to"


def to_make(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist (None: ``folder`` exists): what
    ``mkdir(parents=True)`` will make, and ``remove_made`` removes again."""
    return next((path for path in reversed([folder, *folder.parents]) if not path.exists()), None)


def remove_made(made: Path | None, folder: Path) -> None:
    """Remove the empty folders a command created (``to_make``; ablate.folder.check_writable), from
    ``folder`` up to ``made``: a run refused after its write probe (a trial larger than the cluster, no
    cluster at the address, Ctrl-C while Ray starts), or a comparison stopped before its files were
    written, leaves no empty folder behind. A folder that is no longer empty (another run wrote there
    meanwhile) is kept."""
    if made is None:
        return
    for path in [folder, *folder.parents]:
        try:
            path.rmdir()
        except OSError:
            return
        if path == made:
            return


def user_path(path: str | os.PathLike) -> Path:
    """A path as the user wrote it, with ``~`` and ``~user`` expanded as a shell expands them: a ``~name``
    of no such user (``--storage ~runs``, meaning ~/runs) stays as written, a folder named so, where
    pathlib's ``expanduser`` raised RuntimeError (a traceback). Every path taken from a command line or a
    spec goes through here."""
    return Path(os.path.expanduser(os.fspath(path)))


def user_arg(text: str) -> str:
    """``user_path`` as text: the argparse type of a path option. A shell expands a ``~`` only at the start
    of a word, so ``--out=~/cmp`` reached ablate as written: ``ablate compare`` checked ~/cmp and wrote
    ./~/cmp, ``ablate train`` and ``ablate attention`` wrote into a folder named ``~``. Text, not a Path
    round trip: ``--storage ''`` stays '' (refused), where Path('') is '.'."""
    return os.path.expanduser(text)


def file_on_path(folder: str | os.PathLike) -> Path | None:
    """The file that stands where ``folder`` or one of its parents must be a folder (an output folder
    given below a file), or None: ``mkdir`` would end in FileExistsError or NotADirectoryError."""
    folder = Path(folder)
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


NOT_REGULAR = "not a regular file (a FIFO, socket or device)"  # what such a path is called, wherever met


def special_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is there as neither a folder nor a regular file (links followed): a FIFO,
    socket or device, whose read waits for a writer for ever or never ends. Only its type is looked at."""
    file = Path(path)
    return file.exists() and not file.is_dir() and not file.is_file()


def not_a_file(path: str | os.PathLike) -> str:
    """What stands at ``path`` where a regular file was expected ("" for a regular file, links
    followed): "no such file", "a link to nothing", "a folder" or ``NOT_REGULAR``. Opens nothing."""
    file = Path(path)
    if file.is_file():
        return ""
    if not file.exists():
        return "a link to nothing" if file.is_symlink() else "no such file"
    return "a folder" if file.is_dir() else NOT_REGULAR


NAME_MAX = 255  # bytes in one file name, on every common file system
# POSIX's portable file-name characters, as a regex character class's body: the names ablate makes from
# what a user wrote (a sweep's folder, a plot per parameter) keep to them
PORTABLE_CHARS = "A-Za-z0-9_.-"


def too_long(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be made (a name of more than ``NAME_MAX`` bytes), or ""."""
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return f"the name {part[:40]}… is {size} bytes, where a file system allows {NAME_MAX}"
    return ""
