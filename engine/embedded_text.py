"""The texts an image file carries, read without decoding its pixels: a PNG's text chunks (tEXt, zTXt, iTXt) and the
EXIF UserComment A1111 writes into its JPEG and WebP images (read as its `parameters` text).

A PNG's chunks are walked (its image data skipped), so texts after the image data are read too, and a small file that
claims a huge size, or many frames, costs nothing; an odd file is an `UnreadableImage` sentence.
"""
from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from .png_encoding import PNG_SIGNATURE

logger = logging.getLogger(__name__)

EXIF_IFD = 0x8769  # the EXIF sub-IFD
USER_COMMENT = 0x9286  # its UserComment: an 8-byte character code, then the text
PARAMETERS = "parameters"  # the key A1111's text has in a PNG; a UserComment is read under it
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
TEXT_BYTES = 1024 * 1024  # one text chunk, compressed or not (Pillow's own limit for a text chunk)
TEXT_TOTAL_BYTES = 64 * 1024 * 1024  # every text of a file together (Pillow's limit on text memory)


class UnreadableImage(OSError):
    """The file is not an image whose texts can be read; the message is a sentence for the user."""


def embedded_texts(path: str | Path) -> dict[str, str]:
    """The texts `path` carries by key ({} for none). Raises UnreadableImage when it is no image Pillow can open,
    is too large to open, or has a broken or oversized text chunk."""
    try:
        with open(path, "rb") as file:
            if file.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE:
                return png_texts(file)
        with Image.open(path) as image:  # JPEG, WebP...: their header only, never their pixels
            texts = {key: str(value) for key, value in image.info.items()
                     if isinstance(key, str) and isinstance(value, str)}
            comment = user_comment(image)
    except Image.DecompressionBombError:
        raise UnreadableImage("That image is too large to read (Pillow's limit on pixels).") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, UnicodeDecodeError) as err:
        logger.info("Unreadable image %s: %s", path, err)
        raise UnreadableImage("That file is not an image this app can read (PNG, JPEG or WebP), or its text "
                              "chunks are broken or too large.") from None
    if comment is not None:
        texts.setdefault(PARAMETERS, comment)
    return texts


def png_texts(file: BinaryIO) -> dict[str, str]:
    """The tEXt, zTXt and iTXt chunks of a PNG read from just after its signature, wherever they lie (before or
    after the image data, which is skipped, never decoded): a later chunk of a key wins, as in Pillow. A chunk's text
    over TEXT_BYTES, or all of them over TEXT_TOTAL_BYTES, is ValueError; a file cut short gives what came before."""
    texts: dict[str, str] = {}
    total = 0
    while True:
        head = file.read(8)
        if len(head) < 8:
            return texts
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            return texts
        if kind not in TEXT_CHUNKS:
            file.seek(length + 4, io.SEEK_CUR)  # its data and CRC
            continue
        if length > TEXT_BYTES:
            raise ValueError(f"a {kind.decode()} chunk of {length} bytes")
        data = file.read(length)
        file.seek(4, io.SEEK_CUR)
        if len(data) < length:
            return texts
        key, text = _text_of(kind, data)
        total += len(text)
        if total > TEXT_TOTAL_BYTES:
            raise ValueError("more text than a picture's parameters")
        texts[key] = text


def _text_of(kind: bytes, data: bytes) -> tuple[str, str]:
    """(key, text) of one text chunk: tEXt Latin-1, zTXt compressed Latin-1, iTXt UTF-8 (compressed when flagged)."""
    key, _, rest = data.partition(b"\0")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), _inflated(rest[1:]).decode("latin-1")  # after its compression method byte
    compressed, rest = rest[:1] == b"\1", rest[2:]  # iTXt: flag, method, language\0, translated keyword\0, text
    rest = rest.partition(b"\0")[2].partition(b"\0")[2]
    return key.decode("latin-1"), (_inflated(rest) if compressed else rest).decode("utf-8")


def _inflated(data: bytes) -> bytes:
    """`data` decompressed, at most TEXT_BYTES of it (ValueError beyond: a bomb, not parameters)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("a compressed text chunk larger than a picture's parameters")
    return out


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
