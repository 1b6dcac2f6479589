"""The X/Y/Z plot's pure parts: A1111's value syntax, the cells' order and values, the sentences for bad axes,
the grid's drawing and what its PNG text says."""
from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from engine import params as P
from engine.errors import InvalidRequest
from engine.limits import Limits
from engine.outputs import a1111_parameters, parse_a1111_parameters
from engine.xyz_plot import (GUIDANCE, MIN_LABEL_PX, SEED, STEPS, axis_choices, axis_type, draw_grid, expand,
                             plan_plot, split_values)


def known_models(name: str) -> str | None:
    return None if name in ("auto", "tiny") else f"Unknown model {name!r}. Available models: tiny."


def plot(*axes, limits=Limits(), rng=None):
    return plan_plot(axes, limits, known_models, rng)


def problem(*axes, limits=Limits()) -> str:
    with pytest.raises(InvalidRequest) as err:
        plot(*axes, limits=limits)
    return str(err.value)


@pytest.mark.parametrize("text, whole, values", [
    ("5", True, [5]),
    ("1-5", True, [1, 2, 3, 4, 5]),
    ("5-1", True, [5, 4, 3, 2, 1]),  # counts down towards its end
    ("1-10 (+3)", True, [1, 4, 7, 10]),
    ("1-11 (+3)", True, [1, 4, 7, 10]),  # the end is not reached exactly: the last value before it
    ("10-1 (-3)", True, [10, 7, 4, 1]),
    ("10-20 [3]", True, [10, 15, 20]),
    ("1-10 [4]", True, [1, 4, 7, 10]),
    ("1-2 [3]", True, [1, 1, 2]),  # whole axes cut each value, as A1111 does
    ("-5--3", True, [-5, -4, -3]),
    ("-1", True, [-1]),  # a negative number is no range
    (" 1 - 3 ( +1 ) ", True, [1, 2, 3]),
    ("1-2 (+0.5)", False, [1.0, 1.5, 2.0]),
    ("0.1-0.3 (+0.1)", False, [0.1, 0.2, 0.3]),  # no 0.30000000000000004
    ("3-7.5 [4]", False, [3.0, 4.5, 6.0, 7.5]),
    ("7.5", False, [7.5]),
    ("2.5", True, [2.5]),  # not whole: the parameter's sentence says so
    ("many", True, ["many"]),
])
def test_a1111_values_and_ranges(text, whole, values):
    assert expand(text, whole) == values
    assert all(type(got) is type(want) for got, want in zip(expand(text, whole), values))


@pytest.mark.parametrize("text, needle", [("5-1 (+1)", "its step goes the other way"), ("1-5 (+0)", "a step of 0"),
                                          ("1-5 [0]", "asks for no values")])
def test_ranges_without_values_are_sentences(text, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        expand(text, True)


def test_lists_split_at_commas_and_lines_and_quoted_names_keep_theirs():
    assert split_values('euler, "DPM++ 2M, tuned", ddim') == ["euler", "DPM++ 2M, tuned", "ddim"]
    assert split_values("1,2,\n3,, 4 ,") == ["1", "2", "3", "4"]
    assert split_values("") == []


def test_axis_types_by_key_label_parameter_name_or_a1111s_name():
    assert axis_type("steps") is axis_type("Steps") is axis_type("num_inference_steps") is STEPS
    assert axis_type("CFG Scale") is axis_type("guidance scale") is axis_type("cfg") is GUIDANCE
    assert axis_type("Nothing") is None and axis_type("") is None
    assert axis_choices()[0] == (P.NO_AXIS, P.NO_AXIS) and ("LoRA weight", "lora_weight") in axis_choices()


def test_cells_run_x_fastest_then_y_then_z_with_their_values():
    made = plot(("steps", "2,3"), ("seed", "1, 2"), ("sampler", "euler, ddim"))
    cells = made.cells()
    assert made.count == len(cells) == 8 and [c.number for c in cells] == list(range(1, 9))
    assert [c.place for c in cells] == [(x, y, z) for z in range(2) for y in range(2) for x in range(2)]
    assert [(c.arguments({})["num_inference_steps"], c.arguments({})["seed"], c.arguments({})["sampler"])
            for c in cells] == [(2, 1, "euler"), (3, 1, "euler"), (2, 2, "euler"), (3, 2, "euler"),
                                (2, 1, "ddim"), (3, 1, "ddim"), (2, 2, "ddim"), (3, 2, "ddim")]
    assert cells[5].label == "Steps: 3, Seed: 1, DDIM"


def test_a_lora_weight_cell_sets_the_first_loras_weight_only():
    cell = plot(("lora_weight", "0, 0.5")).cells()[1]
    base = {"loras": [{"name": "detail", "weight": 1.0}, {"name": "style", "weight": 0.3}]}
    assert cell.arguments(base)["loras"] == [{"name": "detail", "weight": 0.5}, {"name": "style", "weight": 0.3}]
    assert base["loras"][0]["weight"] == 1.0  # the shared arguments are not changed


def test_a_random_seed_on_the_axis_is_drawn_once_and_recorded():
    made = plot(("seed", "-1, 7, -1"), rng=random.Random(5))
    first, _, third = made.axes[0].values
    assert 0 <= first <= P.MAX_SEED and first != third and made.axes[0].values[1] == 7
    assert made.record() == {"script": "X/Y/Z plot", "x_type": "Seed", "x_values": "-1, 7, -1",
                             "x_fixed_values": f"{first}, 7, {third}"}


def test_values_given_as_a_list():
    made = plot(("guidance", [3, 7.5]), ("model", ["tiny", "auto"]))
    assert made.axes[0].values == (3, 7.5) and made.axes[1].values == ("tiny", "auto")
    assert made.record()["x_values"] == "3, 7.5"


@pytest.mark.parametrize("axes, sentence", [
    ((("steps", ""),), "The X axis (Steps) has no values: enter 1, 2, 3 or a range such as 10-30 (+10)."),
    ((("steps", "1, 2"), ("sampler", " , ")), "The Y axis (Sampler) has no values: enter names separated by commas."),
    ((("colour", "red"),), "Unknown X axis type 'colour'; axis types: Seed, Steps, Guidance scale, Sampler, Model, "
                           "LoRA weight, Denoising strength, Clip skip, Variation seed, Variation strength, "
                           "Prompt S/R, CFG rescale (or Nothing)."),
    ((("steps", "2, 200"),), "Steps on the X axis must be a whole number from 1 to 150 (got 200)."),
    ((("steps", "2"), ("guidance", "7, sixty")), "Guidance scale on the Y axis must be a number (got 'sixty')."),
    ((("steps", "2"), ("seed", "-2")), "Seed on the Y axis must be -1 (random) or a whole number from 0 to"),
    ((("seed", "1, 99999999999999999999"),), "(got 99999999999999999999)."),  # the number as written
    ((("lora_weight", "5"),), "LoRA weight on the X axis must be between -4 and 4 (got 5)."),
    ((("strength", "1.5"),), "Denoising strength on the X axis must be between 0 and 1 (got 1.5)."),
    ((("sampler", "euler, bogus"),), "Sampler on the X axis must be one of euler, euler_a"),
    ((("model", "tiny, dreamshaper"),), "The X axis (Model): Unknown model 'dreamshaper'. Available models: tiny."),
    ((("steps", "1-3"), ("steps", "4")), "The X and Y axes both vary Steps; give each axis its own parameter."),
    ((), "Choose what the plot varies: an X axis type and its values (Y and Z are optional)."),
    ((("Nothing", "1, 2"),), "Choose what the plot varies"),
    ((("steps", "1-9"), ("seed", "1-8")), "This plot would make 72 images; the limit is 64 (GATOR_MAX_GRID_IMAGES)."),
    ((("steps", "1-100000000"),), "This plot would make at least 100,000,000 images; the limit is 64"),
])
def test_bad_axes_are_sentences_naming_the_axis(axes, sentence):
    assert sentence in problem(*axes)


def test_the_cap_is_a_limit_set_by_its_variable(monkeypatch):
    monkeypatch.setenv("GATOR_MAX_GRID_IMAGES", "3")
    limits = Limits.from_env()
    assert limits.max_grid_images == 3
    assert "the limit is 3 (GATOR_MAX_GRID_IMAGES)" in problem(("steps", "1-2"), ("seed", "1-2"), limits=limits)
    assert plot(("steps", "1-3"), limits=limits).count == 3


def test_the_grid_has_its_label_bands_drawn_above_and_left():
    made = plot(("steps", "2,3"), ("seed", "1, 2"))
    cells = [Image.new("RGB", (64, 64), (40 * n, 90, 160)) for n in range(4)]
    grid = draw_grid(made, cells)
    top, left = grid.height - 2 * 64, grid.width - 2 * 64
    assert top >= MIN_LABEL_PX and left >= MIN_LABEL_PX
    pixels = np.asarray(grid)
    for band in (pixels[:top, left:], pixels[top:, :left]):  # white with dark text in it
        assert (band == 255).all(axis=-1).mean() > 0.5 and (band < 100).all(axis=-1).any()
    assert (pixels[top:top + 64, left + 64:] == (40, 90, 160)).all()  # cell 2 (x=1, y=0) at its place
    assert (pixels[top + 64:, left + 64:] == (120, 90, 160)).all()  # cell 4 (x=1, y=1)


def test_z_values_stand_side_by_side_under_their_labels():
    made = plot(("steps", "2,3"), ("Nothing", ""), ("seed", "1, 2"))
    grid = draw_grid(made, [Image.new("RGB", (64, 64), (0, 0, 200))] * 4)
    band = grid.height - 64  # X labels and Z titles above one row of cells
    assert grid.width > 4 * 64 and band >= 2 * MIN_LABEL_PX
    assert (np.asarray(grid)[:band] < 100).all(axis=-1).any()


def test_the_grid_text_is_a1111s_with_quoted_values_and_reads_back():
    record = plot(("steps", "2,3"), ("seed", "1, 2")).record()
    text = a1111_parameters({"prompt": "a fox", "num_inference_steps": 2, "seed": 1, "width": 64, "height": 64,
                             "plot": record})
    assert text.endswith('Script: X/Y/Z plot, X Type: Steps, X Values: "2,3", Y Type: Seed, Y Values: "1, 2", '
                         'Fixed Y Values: "1, 2"')
    back = parse_a1111_parameters(text)
    assert (back["x_values"], back["y_fixed_values"], back["num_inference_steps"]) == ("2,3", "1, 2", 2)
