"""ControlNet's control maps and values (engine/controlnet.py): canny edges where the picture has edges, thresholds
that keep fewer, lineart_standard lines where a drawing has them, the map fitted to the output size, a sentence for
every bad value, and sd-webui-controlnet's PNG entry written and read back (ours and A1111's own)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from engine.controlnet import CANNY, LINEART_STANDARD, NONE, control_map, preprocess
from engine.errors import InvalidRequest
from engine.outputs import a1111_parameters, parse_a1111_parameters
from engine.png_info import png_info
from engine.request import GenerationRequest


def square(size: int = 64, box: tuple[int, int, int, int] = (16, 16, 47, 47)) -> Image.Image:
    """A black square on white."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).rectangle(box, fill="black")
    return image


def test_canny_marks_the_square_s_outline_white_on_black():
    edges = np.asarray(preprocess(square(), CANNY))
    assert edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}
    white = np.argwhere(edges[..., 0] == 255)
    assert white.size and white.min() >= 15 and white.max() <= 48  # only along the square's border
    assert edges[30:34, 30:34].max() == 0 and edges[:10, :10].max() == 0  # nothing inside, nothing in the margin


def test_canny_thresholds_keep_fewer_edges_when_raised():
    ramp = (np.indices((64, 64))[1] * 4).astype(np.uint8)  # soft steps: weak edges everywhere
    noisy = np.clip(ramp + np.random.default_rng(1).integers(0, 40, (64, 64)), 0, 255).astype(np.uint8)
    picture = Image.fromarray(np.stack([noisy] * 3, axis=-1))
    many = (np.asarray(preprocess(picture, CANNY, 20, 40)) > 0).sum()
    few = (np.asarray(preprocess(picture, CANNY, 150, 250)) > 0).sum()
    assert many > few


def test_lineart_standard_finds_a_drawing_s_dark_line():
    drawing = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(drawing).line((8, 32, 56, 32), fill="black", width=2)
    lines = np.asarray(preprocess(drawing, LINEART_STANDARD))[..., 0].astype(int)
    drawn = np.asarray(drawing)[..., 0] == 0
    assert lines[drawn].min() > 100 and lines[~drawn].max() == 0  # light where the line is, black elsewhere
    assert np.asarray(preprocess(Image.new("RGB", (32, 32), "white"), LINEART_STANDARD)).max() == 0  # no line


def test_none_passes_the_map_and_the_map_is_fitted_to_the_output():
    req = GenerationRequest("a fox", width=96, height=64, control_image=square(), controlnet="x",
                            controlnet_module=NONE).validated()
    made = control_map(req)
    assert made.size == (96, 64) and made.mode == "RGB"
    assert control_map(GenerationRequest("a fox", width=64, height=64).validated()) is None


@pytest.mark.parametrize("values, sentence", [
    (dict(controlnet="x"), "The ControlNet x needs a control image"),
    (dict(control_image=square()), "A control image needs a ControlNet model"),
    (dict(control_image=square(), controlnet="none"), "A control image needs a ControlNet model"),
    (dict(controlnet="x", control_image=42), "The control image must be an image (got int)."),
    (dict(controlnet="x", control_image=square(), controlnet_weight=2.5),
     "Control weight must be between 0 and 2 (got 2.5)."),
    (dict(controlnet="x", control_image=square(), controlnet_end=1.5), "Guidance end must be between 0 and 1"),
    (dict(controlnet="x", control_image=square(), controlnet_start=-0.1), "Guidance start must be between 0 and 1"),
    (dict(controlnet="x", control_image=square(), controlnet_start=0.7, controlnet_end=0.4),
     "Guidance start (0.7) must be before guidance end (0.4)"),
    (dict(controlnet="x", control_image=square(), controlnet_module="depth"),
     "Preprocessor must be one of none, canny, lineart_standard (got 'depth')."),
    (dict(controlnet="x", control_image=square(), canny_high=300), "Canny high threshold must be a whole number"),
])
def test_bad_values_are_sentences(values, sentence):
    with pytest.raises(InvalidRequest, match=None) as caught:
        GenerationRequest("a fox", width=64, height=64, **values).validated()
    assert sentence in str(caught.value)


def test_thresholds_are_not_checked_for_another_preprocessor():
    req = GenerationRequest("a fox", width=64, height=64, control_image=square(), controlnet="x",
                            controlnet_module=LINEART_STANDARD, canny_low="whatever").validated()
    assert req.uses_controlnet and req.controlnet_module == LINEART_STANDARD


UNIT = dict(controlnet="control_v11p_sd15_canny", controlnet_module="canny", controlnet_weight=0.8,
            controlnet_start=0.1, controlnet_end=0.9, canny_low=90, canny_high=180)


def test_the_png_entry_is_sd_webui_controlnet_s_and_reads_back():
    params = dict(prompt="a fox", negative_prompt="", width=64, height=64, num_inference_steps=4, sampler="euler",
                  guidance_scale=5.0, seed=3, model="tiny", backend="diffusers", **UNIT)
    text = a1111_parameters(params)
    assert ('ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny, Weight: 0.8, Threshold A: 90, '
            'Threshold B: 180, Guidance Start: 0.1, Guidance End: 0.9, Pixel Perfect: True, Control Mode: Balanced"'
            in text)
    read = parse_a1111_parameters(text)
    assert {k: read[k] for k in UNIT} == UNIT and read["seed"] == 3 and read["model"] == "tiny"


def test_a1111_s_own_controlnet_entry_is_read(tmp_path):
    text = ('a castle\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, '
            'Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, ControlNet 0: "Module: canny, Model: '
            'control_v11p_sd15_canny [d14c016b], Weight: 1, Resize Mode: Crop and Resize, Low Vram: False, Processor '
            'Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, '
            'Control Mode: Balanced", Version: v1.6.0')
    read = parse_a1111_parameters(text)
    assert (read["controlnet"], read["controlnet_module"], read["controlnet_weight"]) == (
        "control_v11p_sd15_canny", "canny", 1.0)
    assert (read["controlnet_start"], read["controlnet_end"], read["canny_low"], read["canny_high"]) == (
        0.0, 1.0, 100, 200)
    assert read["model"] == "v1-5-pruned-emaonly" and (read["width"], read["height"]) == (512, 768)
    assert read["negative_prompt"] == "blurry" and read["seed"] == 42
    info = PngImagePlugin.PngInfo()  # PNG info of an A1111 PNG reads the same
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    read = png_info(tmp_path / "a1111.png")
    assert read["source"] == "a1111" and read["controlnet"] == "control_v11p_sd15_canny" and read["canny_high"] == 200
