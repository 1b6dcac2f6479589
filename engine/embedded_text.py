"""The texts an image file carries, read without decoding its pixels: a PNG's text chunks (tEXt, zTXt, iTXt) and the
EXIF UserComment A1111 writes into its JPEG and WebP images (read as its `parameters` text).

A PNG's chunks before its image data come with the header (this app's, A1111's and ComfyUI's texts are there); only a
PNG that has none there, and is small enough to decode (Limits.max_input_pixels), is decoded for chunks after it.
So a small file that claims a huge size costs nothing, and an odd file is an `UnreadableImage` sentence.
"""
from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

from PIL import Image

from .limits import Limits

logger = logging.getLogger(__name__)

EXIF_IFD = 0x8769  # the EXIF sub-IFD
USER_COMMENT = 0x9286  # its UserComment: an 8-byte character code, then the text
PARAMETERS = "parameters"  # the key A1111's text has in a PNG; a UserComment is read under it


class UnreadableImage(OSError):
    """The file is not an image whose texts can be read; the message is a sentence for the user."""


def embedded_texts(path: str | Path, decode_pixels_at_most: int | None = None) -> dict[str, str]:
    """The texts `path` carries by key ({} for none); a PNG is decoded for late chunks only up to
    `decode_pixels_at_most` pixels (None: Limits' max_input_pixels). Raises UnreadableImage when it is no image Pillow can open,
    is too large to open, or has a broken or oversized text chunk."""
    try:
        with Image.open(path) as image:
            texts = {key: str(value) for key, value in image.info.items()
                     if isinstance(key, str) and isinstance(value, str)}
            comment = None if image.format == "PNG" else user_comment(image)  # a PNG's getexif decodes it
            if comment is not None:
                texts.setdefault(PARAMETERS, comment)
            at_most = Limits().max_input_pixels if decode_pixels_at_most is None else decode_pixels_at_most
            if not texts and image.format == "PNG" and image.width * image.height <= at_most:
                texts = {key: str(value) for key, value in (image.text or {}).items()}  # chunks after the pixels
    except Image.DecompressionBombError:
        raise UnreadableImage("That image is too large to read (Pillow's limit on pixels).") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as err:
        logger.info("Unreadable image %s: %s", path, err)
        raise UnreadableImage("That file is not an image this app can read (PNG, JPEG or WebP), or its text "
                              "chunks are broken or too large.") from None
    return texts


def user_comment(image: Image.Image) -> str | None:
    """The EXIF UserComment's text (A1111's parameters in a JPEG or WebP), None without one. Its character code
    says how the rest is written: UNICODE (UTF-16, big-endian as piexif writes it unless the bytes say otherwise),
    ASCII, or undefined (read as UTF-8)."""
    try:
        raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except (OSError, ValueError, SyntaxError, struct.error, KeyError, TypeError):
        return None
    if isinstance(raw, str):
        return raw.strip("\0") or None
    if not isinstance(raw, bytes) or len(raw) <= 8:
        return None
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        big_endian = body[0::2].count(0) >= body[1::2].count(0)  # ASCII-range text: its zero bytes come first
        text = body.decode("utf-16-be" if big_endian else "utf-16-le", errors="replace")
    else:
        text = body.decode("ascii" if code.startswith(b"ASCII") else "utf-8", errors="replace")
    return text.strip("\0") or None
