"""Images a request starts from, whatever their mode: a 16-bit or float greyscale picture (a depth map, a mask) keeps
its greys instead of turning white; EXIF rotation is applied; an odd file is a sentence."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.errors import InvalidRequest
from engine.input_images import read_input_image
from engine.limits import Limits


def test_a_16_bit_greyscale_png_keeps_its_greys(tmp_path):
    values = np.array([[0, 16384, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "depth.png")
    assert Image.open(tmp_path / "depth.png").mode.startswith("I")
    read = read_input_image(tmp_path / "depth.png", Limits())
    assert read.mode == "RGB" and [read.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0), (64, 64, 64), (128, 128, 128), (255, 255, 255)]


def test_float_and_32_bit_greyscale_are_scaled_too():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert [read_input_image(unit, Limits()).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide = Image.fromarray(np.array([[0, 1 << 19, 1 << 20]], np.int32))  # beyond 16 bits: its own top
    assert [read_input_image(wide, Limits()).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_ordinary_modes_are_unchanged_and_exif_rotation_applies(tmp_path):
    rgba = Image.new("RGBA", (4, 2), (10, 20, 30, 255))
    assert read_input_image(rgba, Limits()).getpixel((0, 0)) == (10, 20, 30)
    photo = Image.new("RGB", (4, 2), (200, 0, 0))
    exif = photo.getexif()
    exif[0x0112] = 6  # rotated: shown 90 degrees clockwise
    photo.save(tmp_path / "turned.jpg", exif=exif)
    assert read_input_image(tmp_path / "turned.jpg", Limits()).size == (2, 4)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InvalidRequest, match="could not be read as an image"):
        read_input_image(tmp_path / "notes.png", Limits())
