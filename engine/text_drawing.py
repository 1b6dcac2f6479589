"""Text drawn into pictures (title cards, a plot's axis labels): a font Debian has, and lines wrapped to a width."""
from __future__ import annotations

from typing import Any

from PIL import ImageDraw, ImageFont


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (Liberation Sans, else Pillow's own font) at `size` pixels: plain text, no emoji."""
    for name in (("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold
                 else ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: float) -> list[str]:
    """`text` in lines no wider than `max_width` (at word breaks; a word wider than that is cut)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= max_width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
            while draw.textlength(line, font=font) > max_width and len(line) > 1:  # a word wider than the card
                cut = max(1, int(len(line) * max_width / draw.textlength(line, font=font)))
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


ELLIPSIS = "…"


def ellipsized(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: float) -> str:
    """`text` cut at its end until it and an ellipsis after it fit in `max_width`: a line that goes on."""
    text = text.rstrip()
    while text and draw.textlength(text + ELLIPSIS, font=font) > max_width:
        share = max_width / draw.textlength(text + ELLIPSIS, font=font)  # cut in proportion: few measurements
        text = text[:min(len(text) - 1, int(len(text) * share))].rstrip()
    return text + ELLIPSIS


def one_line(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: float) -> str:
    """`text` on one line no wider than `max_width`: whole when it fits, else ellipsized."""
    text = " ".join(text.split())
    return text if draw.textlength(text, font=font) <= max_width else ellipsized(draw, text, font, max_width)
