"""Which files of an image folder do not decode, decided once per machine, not once per process.

Every image of a folder is decoded before training, so that a truncated or non-image file stops a
run at its start instead of in its middle. That costs 0.3-1 ms an image: minutes for ImageNet's
1.28 M, and every process that builds the folder paid it (the driver's input check, its reference
kNN, each trial). The verdict (which files do not decode, and why) is kept under a digest of the
files' metadata (path, inode, size, modification and status-change time: one ``stat`` each, about
3 us): in the process, and in a JSON file in the user's cache folder (``$ABLATE_CACHE_DIR``, else
``$XDG_CACHE_HOME/ablate``, else ``~/.cache/ablate``), so the next process on the machine reads it
instead of decoding. A file added, removed or rewritten changes the digest, and the folder is
decoded anew. The file is plain JSON read with checks (nothing in it can run code): one that is not
a verdict of this folder's present files is ignored, and the folder is decoded. A file this user may
not read (``DENIED``) is not a bad image: a kept verdict stands only while each such file is still
refused (a group the user has joined since changes no file's metadata), tried again alone.

    unreadable_images(["data/train/a/0.jpg", ...], "/abs/data/train")  # [(path, problem), ...]
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

from PIL import Image

from sweep_format.files import loads, user_path, write_json
from trainables.image_files import open_image, readable_formats

Verdict = list[tuple[str, str]]  # (path, why it does not decode)
FORMAT = "ablate-image-verdict"
MAX_BYTES = 64 << 20  # a verdict larger than this is not one of ours

_VERDICTS: dict[str, tuple[str, Verdict]] = {}  # this process's: folder -> (digest, verdict)
# the problem of a file this user may not read starts so: "cannot be read (Permission denied)"
DENIED = "cannot be read ("
# how a version before DENIED kept that problem (str of the PermissionError): such a verdict is not reused
_OLD_DENIED = tuple(f"[Errno {code}] " for code in (errno.EACCES, errno.EPERM))


def denied(problem: str) -> bool:
    """Whether ``problem`` (of a verdict) is a file this user may not read, not one that does not decode."""
    return problem.startswith(DENIED)


def unreadable_images(paths: list[str], folder: str) -> Verdict:
    """(path, problem) of every file in ``paths`` (the images of ``folder``) that does not decode."""
    digest = files_digest(paths)
    known = _VERDICTS.get(folder) or read_verdict(folder)
    if known is not None and known[0] == digest and still_denied(known[1]):
        _VERDICTS[folder] = known
        return list(known[1])
    bad, large = [], []
    limit = Image.MAX_IMAGE_PIXELS  # None: the user turned Pillow's limit off
    for path in paths:
        problem, pixels = image_problem(path)
        if problem:
            bad.append((path, problem))
        elif limit is not None and pixels > limit:
            large.append((path, pixels))
    _VERDICTS[folder] = (digest, list(bad))
    _LARGE[folder] = large
    write_verdict(folder, digest, bad)
    return bad


_LARGE: dict[str, list[tuple[str, int]]] = {}  # this process's: folder -> (path, pixels) of its large images


def still_denied(verdict: Verdict) -> bool:
    """Whether every file the verdict names as refused to this user is refused still (a chmod changes
    the digest; joining the file's group does not); a verdict of an older version that kept a refusal
    as a bad image's problem, with the advice to remove it, does not stand."""
    if any(problem.startswith(_OLD_DENIED) for _, problem in verdict):
        return False
    return all(denied(image_problem(path)[0]) for path, problem in verdict if denied(problem))


def large_images(folder: str) -> list[tuple[str, int]]:
    """(path, pixels) of the images of ``folder`` above Pillow's decompression-bomb warning limit
    (``Image.MAX_IMAGE_PIXELS``, 89,478,485 pixels; twice that does not decode), found when this
    process decoded the folder (none when it read the kept verdict)."""
    return list(_LARGE.get(folder, []))


def image_problem(path: str) -> tuple[str, int]:
    """Why ``path`` does not decode as an image ("" when it does), and its pixels."""
    try:
        with open_image(path) as img:
            pixels = img.width * img.height  # before draft(), which scales a JPEG down
            img.draft("RGB", (64, 64))
            img.load()
    except PermissionError as exc:  # not a bad image: the remedy is a chmod, not removing it
        return f"{DENIED}{exc.strerror or 'Permission denied'})", 0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return str(exc).split("\n", 1)[0] or type(exc).__name__, 0
    return "", pixels


def files_digest(paths: list[str]) -> str:
    """A digest of the files' paths, inodes, sizes, modification and status-change times, and of the
    formats they are opened as (a verdict kept when EPS files decoded does not stand now)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{','.join(readable_formats())}\0".encode())
    for path in paths:
        try:
            st = os.stat(path)
            stamp = f"{path}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0"
        except OSError:
            stamp = f"{path}\0missing\0"
        digest.update(stamp.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where verdicts are kept: ``$ABLATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ablate``, else
    ``~/.cache/ablate``."""
    if os.environ.get("ABLATE_CACHE_DIR"):
        return user_path(os.environ["ABLATE_CACHE_DIR"])
    return user_path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "ablate"


def verdict_file(folder: str) -> Path:
    name = hashlib.blake2b(folder.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
    return cache_dir() / "image_folders" / f"{name}.json"


def read_verdict(folder: str) -> tuple[str, Verdict] | None:
    """The kept verdict of ``folder`` (its digest and unreadable files), None when there is none usable."""
    file = verdict_file(folder)
    try:
        if file.stat().st_size > MAX_BYTES:
            return None
        data: Any = loads(file.read_bytes())
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("folder") == folder
            and isinstance(data.get("digest"), str) and isinstance(data.get("unreadable"), list)):
        return None
    bad = data["unreadable"]
    if not all(isinstance(b, list) and len(b) == 2 and all(isinstance(s, str) for s in b) for b in bad):
        return None
    return data["digest"], [(path, problem) for path, problem in bad]


def write_verdict(folder: str, digest: str, bad: Verdict) -> None:
    """Keep the verdict for the next process; a cache folder that cannot be written only costs time."""
    file = verdict_file(folder)
    with contextlib.suppress(OSError):
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json(file, {"format": FORMAT, "folder": folder, "digest": digest,
                          "unreadable": [list(b) for b in bad]})
