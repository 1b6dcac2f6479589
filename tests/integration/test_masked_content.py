"""A1111's "masked content" for inpaint: fill (the colours around the mask, done once for every backend), original,
latent noise and latent nothing (the encoded latents under the mask replaced by the seed's noise or by zeros),
locally on the tiny model and on ComfyUI with core nodes (ThresholdMask, LatentCompositeMasked, AddNoise), against
the fake ComfyUI (real sockets). Outside the mask the original stays exact in every mode."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.inpaint import FILL, LATENT_NOISE, LATENT_NOTHING, MASKED_CONTENTS, ORIGINAL, filled
from engine.outputs import parse_a1111_parameters
from engine.workflows import use_inpaint
from tests.integration.test_comfyui_img2img import RUN as ON_COMFYUI, by_class, sd_graph, flux_custom_graph
from tests.support.fake_comfyui import ZERO_LATENT_GREY

LOCAL = dict(num_inference_steps=4, seed=3, model="tiny", strength=0.5, mask_blur=0)


def two_colours(size: int = 64) -> Image.Image:
    """Red on the left, blue on the right, and a green square in the middle (under the mask: what a fill removes)."""
    picture = Image.new("RGB", (size, size), (200, 40, 40))
    ImageDraw.Draw(picture).rectangle((size // 2, 0, size - 1, size - 1), fill=(40, 40, 200))
    ImageDraw.Draw(picture).rectangle((20, 20, 43, 43), fill=(40, 220, 40))
    return picture


def square(size: int = 64, low: int = 16, high: int = 47) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle((low, low, high, high), fill=255)
    return mask


def array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def test_fill_paints_the_mask_with_the_colours_around_it_and_keeps_the_rest():
    picture, mask = two_colours(), square()
    out, start, inside = array(filled(picture, mask)), array(picture), np.asarray(mask) > 0
    assert np.array_equal(out[~inside], start[~inside])
    assert out[32, 18][0] > out[32, 18][2] and out[32, 45][2] > out[32, 45][0]  # red near red, blue near blue
    assert 60 < out[32, 32][0] < 180 and 60 < out[32, 32][2] < 180  # the middle between the two
    assert out[inside][:, 1].max() < 60 and start[inside][:, 1].max() == 220  # the green square is gone


async def test_each_mode_starts_the_masked_part_from_its_own_latents_locally(manager):
    picture, mask = two_colours(), square()
    results = {mode: await manager.generate_image("a fox", init_image=picture, mask=mask, masked_content=mode,
                                                  **LOCAL) for mode in MASKED_CONTENTS}
    assert all(r.status == "success" for r in results.values()), {m: r.error for m, r in results.items()}
    made = {mode: array(r.image) for mode, r in results.items()}
    inside, start = np.asarray(mask) > 0, array(picture)
    for mode, image in made.items():
        assert np.array_equal(image[~inside], start[~inside]), mode  # outside the mask: the original exactly
        if mode != ORIGINAL:
            assert np.abs(image[inside] - made[ORIGINAL][inside]).mean() > 3, mode
    assert np.abs(made[LATENT_NOISE][inside] - made[LATENT_NOTHING][inside]).mean() > 3
    again = await manager.generate_image("a fox", init_image=picture, mask=mask, masked_content=LATENT_NOISE, **LOCAL)
    assert np.array_equal(array(again.image), made[LATENT_NOISE])  # the noise is the seed's
    # the pipeline is left as it was: the next request with "original" gives the same image as before
    plain = await manager.generate_image("a fox", init_image=picture, mask=mask, **LOCAL)
    assert np.array_equal(array(plain.image), made[ORIGINAL])
    saved = parse_a1111_parameters(Image.open(results[LATENT_NOTHING].path).text["parameters"])
    assert saved["masked_content"] == LATENT_NOTHING and results[FILL].masked_content == FILL


async def test_masked_content_is_not_recorded_without_a_mask_and_a_wrong_one_is_a_sentence(manager):
    plain = await manager.generate_image("a fox", init_image=two_colours(), **LOCAL)
    assert plain.status == "success" and plain.masked_content is None
    assert "Masked content" not in Image.open(plain.path).text["parameters"]
    wrong = await manager.generate_image("a fox", init_image=two_colours(), mask=square(), masked_content="blur",
                                         **LOCAL)
    assert wrong.status == "error"
    assert wrong.error == "Masked content must be one of fill, original, latent noise, latent nothing (got 'blur')."


def test_latent_nothing_puts_the_graphs_own_empty_latent_under_the_thresholded_mask():
    out = use_inpaint(sd_graph(), "in.png", "mask.png", 0.8, LATENT_NOTHING, seed=9)
    (threshold_id, threshold), = by_class(out, "ThresholdMask").items()
    (composite_id, composite), = by_class(out, "LatentCompositeMasked").items()
    (encode_id, _), = by_class(out, "VAEEncode").items()
    (mask_id, _), = by_class(out, "LoadImageMask").items()
    (empty_id, empty), = by_class(out, "EmptyLatentImage").items()
    assert threshold == {"mask": [mask_id, 0], "value": 0.5}
    assert composite == {"destination": [encode_id, 0], "source": [empty_id, 0], "x": 0, "y": 0,
                         "resize_source": False, "mask": [threshold_id, 0]}
    (noise_mask,) = by_class(out, "SetLatentNoiseMask").values()
    assert noise_mask == {"samples": [composite_id, 0], "mask": [mask_id, 0]}  # the soft mask for the sampler
    assert (empty["width"], empty["height"]) == (32, 32)
    assert not by_class(out, "AddNoise")


@pytest.mark.parametrize("graph", [sd_graph, flux_custom_graph])
def test_latent_noise_adds_the_seeds_noise_at_sigma_one_to_the_empty_latent(graph):
    out = use_inpaint(graph(), "in.png", "mask.png", 0.8, LATENT_NOISE, seed=9)
    (add_id, added), = by_class(out, "AddNoise").items()
    (noise_id, noise), = by_class(out, "RandomNoise").items() if graph is sd_graph else \
        [(nid, node) for nid, node in by_class(out, "RandomNoise").items() if node["noise_seed"] == 9]
    (sigma_id, sigma), = by_class(out, "SetFirstSigma").items()
    schedulers = {nid: node for nid, node in by_class(out, "BasicScheduler").items() if node["steps"] == 1}
    (scheduler_id, scheduler), = schedulers.items()
    loader = next(nid for nid, node in out.items() if node["class_type"] in ("CheckpointLoaderSimple", "UNETLoader"))
    empty_id = next(nid for nid, node in out.items() if node["class_type"].startswith("Empty"))
    assert noise == {"noise_seed": 9} and sigma == {"sigmas": [scheduler_id, 0], "sigma": 1.0}
    assert scheduler == {"model": [loader, 0], "scheduler": "normal", "steps": 1, "denoise": 1.0}
    assert added == {"model": [loader, 0], "noise": [noise_id, 0], "sigmas": [sigma_id, 0],
                     "latent_image": [empty_id, 0]}
    (composite,) = by_class(out, "LatentCompositeMasked").values()
    assert composite["source"] == [add_id, 0]


def test_original_and_fill_change_nothing_in_the_graph():
    assert use_inpaint(sd_graph(), "in.png", "mask.png", 0.5, FILL) == use_inpaint(sd_graph(), "in.png", "mask.png",
                                                                                  0.5, ORIGINAL)


async def test_on_comfyui_each_mode_reaches_the_sampler(comfy_manager, fake):
    picture, mask = two_colours(), square()
    inside = np.asarray(mask) > 0
    made = {}
    for mode in MASKED_CONTENTS:
        result = await comfy_manager.generate_image("a fox", init_image=picture, mask=mask, masked_content=mode,
                                                    strength=0.0, mask_blur=0, **ON_COMFYUI)
        assert result.status == "success" and result.backend == "comfyui", (result.error, result.fallback_reason)
        made[mode] = array(result.image)
        assert np.array_equal(made[mode][~inside], array(picture)[~inside]), mode
    # denoise 0: the fake gives back what the sampler starts from (a VAE round trip: each value's lowest bit)
    assert np.abs(made[ORIGINAL][inside] - array(picture)[inside]).max() <= 1
    filled_start = array(filled(picture, mask))
    assert np.abs(made[FILL][inside] - filled_start[inside]).max() <= 1  # the upload was filled
    assert np.abs(made[LATENT_NOTHING][inside] - np.array(ZERO_LATENT_GREY)).max() <= 1
    assert made[LATENT_NOISE][inside].std() > 50  # the seed's noise
    noised = [prompt for prompt in fake.prompts if by_class(prompt, "AddNoise")]
    assert len(noised) == 1 and by_class(noised[0], "RandomNoise")  # latent noise's graph only
