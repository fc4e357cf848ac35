"""Opening an image file with Pillow's raster decoders only: no format whose reader runs a program.

Pillow tells a file's format by its content, not by its name, and one of the formats it knows is
a program: an EPS file is PostScript, which Pillow renders by running Ghostscript on it (``gs
-dSAFER``, whose sandbox has been escaped more than once). A ``.png`` in a data folder someone
else wrote can be such a file. ``open_image`` lets Pillow try the raster formats an image folder
holds (torchvision's image extensions, and GIF) and nothing else; any other content is an
``UnidentifiedImageError`` (an OSError) like any file that does not decode. A path that is not a
regular file (a named pipe, a device) is an OSError before it is opened: opening a FIFO named
``0.jpg`` waited for a writer for ever, and the run hung without a word. Every image file ablate
reads (a data folder's, ``ablate attention --image``) is opened here.

    with open_image("data/train/cat/0.jpg") as img:
        img.load()
"""

from __future__ import annotations

import functools
import os
import stat
import warnings
from typing import IO

from PIL import Image, UnidentifiedImageError

from sweep_format.files import NOT_REGULAR

# Pillow's format names: .jpg/.jpeg (and a camera's multi-picture JPEG), .png, .bmp, .ppm/.pgm,
# .tif/.tiff, .webp, .gif
FORMATS = ("JPEG", "PNG", "BMP", "PPM", "TIFF", "WEBP", "GIF")


@functools.cache
def readable_formats() -> tuple[str, ...]:
    """The ``FORMATS`` this Pillow can decode (WEBP needs libwebp)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def open_image(file: str | os.PathLike | IO[bytes]) -> Image.Image:
    """``Image.open(file)`` trying ``readable_formats()`` only; a path must name a regular file."""
    formats = readable_formats()
    if isinstance(file, (str, os.PathLike)):
        check_regular(file)
    try:
        with warnings.catch_warnings():  # Pillow's two lines, naming its own source, reached the terminal:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # trainables.data says it once
            return Image.open(file, formats=formats)
    except UnidentifiedImageError as exc:
        raise UnidentifiedImageError(f"{exc} as one of the formats ablate reads "
                                     f"({', '.join(formats)})") from None


def check_regular(path: str | os.PathLike) -> None:
    """OSError unless ``path`` (links followed) is a regular file: reading a named pipe waits for a
    writer for ever, and a device never ends or is no image."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError("a folder, not an image file")
    if not stat.S_ISREG(mode):
        raise OSError(NOT_REGULAR)
