"""A1111's variation seed on the tiny model: strength 0 is the seed's own image and 1 the variation seed's, in
between a variation of the first; a batch steps both seeds; the PNG records it as A1111 writes it; auto mode runs it
on this machine even with ComfyUI up, a forced ComfyUI or inpaint is a sentence; image to image varies the noise it adds
to the init image; an X/Y/Z axis varies it."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.outputs import read_parameters
from tests.integration.test_fallback import wait_until

SMALL = dict(width=64, height=64, num_inference_steps=3, model="tiny")


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    return np.asarray(result.image).astype(int)


async def test_the_strength_moves_the_image_from_the_seeds_to_the_variation_seeds(manager):
    own = pixels(await manager.generate_image("a lighthouse", seed=5, **SMALL))
    other = pixels(await manager.generate_image("a lighthouse", seed=9, **SMALL))
    none = await manager.generate_image("a lighthouse", seed=5, variation_seed=9, variation_strength=0, **SMALL)
    assert np.array_equal(pixels(none), own) and none.variation_seed is None and none.variation_strength is None
    full = await manager.generate_image("a lighthouse", seed=5, variation_seed=9, variation_strength=1, **SMALL)
    assert np.abs(pixels(full) - other).max() <= 2  # all the way: the variation seed's own image
    some = await manager.generate_image("a lighthouse", seed=5, variation_seed=9, variation_strength=0.2, **SMALL)
    varied = pixels(some)
    assert not np.array_equal(varied, own) and np.abs(varied - own).mean() < np.abs(varied - other).mean()
    assert (some.seed, some.variation_seed, some.variation_strength) == (5, 9, 0.2)
    text = Image.open(some.path).text["parameters"]
    assert "Seed: 5," in text and "Variation seed: 9, Variation seed strength: 0.2" in text
    saved = read_parameters(some.path)
    assert (saved["variation_seed"], saved["variation_strength"]) == (9, 0.2)
    again = await manager.generate_image("a lighthouse", seed=5, variation_seed=9, variation_strength=0.2, **SMALL)
    assert np.array_equal(pixels(again), varied)


async def test_a_batch_steps_both_seeds_and_minus_one_draws_one(manager):
    result = await manager.generate_image("a lighthouse", seed=5, variation_seed=9, variation_strength=0.3,
                                          batch_count=2, **SMALL)
    assert [(item.seed, item.variation_seed) for item in result.batch] == [(5, 9), (5, 10)]  # variations of seed 5
    drawn = await manager.generate_image("a lighthouse", seed=5, variation_seed=-1, variation_strength=0.3, **SMALL)
    assert drawn.status == "success" and isinstance(drawn.variation_seed, int) and drawn.variation_seed >= 0


async def test_image_to_image_varies_the_noise_it_adds_to_the_init_image(manager):
    image = Image.fromarray((np.indices((64, 64)).sum(0) % 256).astype(np.uint8)).convert("RGB")
    run = dict(seed=5, init_image=image, strength=0.8, **SMALL)

    async def made(**variation):
        result = await manager.generate_image("a lighthouse", **run, **variation)
        assert result.status == "success", result.error
        return result

    plain, barely = await made(), await made(variation_seed=9, variation_strength=0.001)
    varied, again, other = (await made(variation_seed=9, variation_strength=0.5),
                            await made(variation_seed=9, variation_strength=0.5),
                            await made(variation_seed=10, variation_strength=0.5))
    pixels = [np.asarray(r.image).astype(int) for r in (plain, barely, varied, again, other)]
    assert np.abs(pixels[1] - pixels[0]).max() <= 2  # a strength near 0: the seed's own noise
    assert np.abs(pixels[2] - pixels[0]).mean() > 1 and np.array_equal(pixels[2], pixels[3])
    assert np.abs(pixels[4] - pixels[2]).mean() > 1  # another variation seed, another variation
    assert (varied.variation_seed, varied.variation_strength) == (9, 0.5)
    assert "Variation seed: 9, Variation seed strength: 0.5" in Image.open(varied.path).text["parameters"]
    after = await made()  # the scheduler's own noise again
    assert np.array_equal(np.asarray(after.image), np.asarray(plain.image))
    whole = await made(variation_seed=9, variation_strength=1.0)  # all the way: the variation seed's own noise
    seed_9 = await manager.generate_image("a lighthouse", **{**run, "seed": 9})
    near, far = (np.abs(np.asarray(whole.image).astype(int) - np.asarray(other.image).astype(int)).mean()
                 for other in (seed_9, plain))
    assert near < far / 2, (near, far)  # seed 9's image to image but for the init image's latent sample (seed 5's)


async def test_what_cannot_use_it_is_a_sentence(manager):
    image = Image.new("RGB", (64, 64), "white")
    mask = Image.new("L", (64, 64), 255)
    result = await manager.generate_image("a lighthouse", seed=5, variation_strength=0.3, init_image=image, mask=mask,
                                          **SMALL)
    assert result.status == "error" and "Variation seed works with text to image (and its hires fix) and image to " \
                                        "image: set Variation strength to 0 for inpaint or outpaint." in result.error
    result = await manager.generate_image("a lighthouse", seed=5, variation_strength=0.3, user_workflow="mine.json",
                                          **SMALL)
    assert result.status == "error" and "a variation seed cannot be added to it" in result.error
    result = await manager.generate_image("a lighthouse", seed=5, variation_strength=1.5, **SMALL)
    assert result.status == "error" and "Variation strength" in result.error


async def test_auto_runs_it_here_while_comfyui_is_up_and_a_forced_comfyui_says_why(comfy_manager, fake):
    assert wait_until(lambda: comfy_manager.active_backend()["backend"] == "comfyui")
    result = await comfy_manager.generate_image("a cat", seed=3, variation_seed=4, variation_strength=0.5,
                                                width=64, height=64, num_inference_steps=2)
    assert result.status == "success" and result.backend == "diffusers", result.error
    assert result.variation_seed == 4 and not result.fallback_reason
    forced = await comfy_manager.generate_image("a cat", seed=3, variation_strength=0.5, backend="comfyui",
                                                width=64, height=64, num_inference_steps=2)
    assert forced.status == "error" and forced.error == "ComfyUI cannot make variation seeds."
    on_server = await comfy_manager.generate_image("a cat", seed=3, variation_strength=0.5, width=64, height=64,
                                                   num_inference_steps=2, model="comfyui:tiny-sd15.safetensors")
    assert on_server.status == "error" and "cannot make variation seeds" in on_server.error


async def test_an_xyz_axis_varies_the_strength_with_one_variation_seed(manager):
    plot = await manager.xyz_plot("a lighthouse", "Var. strength", "0, 0.5, 1", seed=5, **SMALL)
    assert plot.status == "success", plot.error
    cells = plot.batch
    assert [cell.variation_strength for cell in cells] == [None, 0.5, 1.0]
    assert cells[1].variation_seed == cells[2].variation_seed is not None  # drawn once for the plot
    failed = await manager.xyz_plot("a lighthouse", "Var. seed", "1, 2", seed=5, **SMALL)
    assert failed.status == "error" and "changes nothing while Variation strength is 0" in failed.error


async def test_a_strength_axis_is_checked_before_any_cell_and_keeps_the_grid_on_one_backend(comfy_manager, fake):
    assert wait_until(lambda: comfy_manager.active_backend()["backend"] == "comfyui")
    plot = await comfy_manager.xyz_plot("a cat", "Var. strength", "0, 0.5", seed=3, width=64, height=64,
                                        num_inference_steps=2)
    assert plot.status == "success", plot.error
    assert [cell.backend for cell in plot.batch] == ["diffusers", "diffusers"]  # the 0 cell too: one baseline
    image = Image.new("RGB", (64, 64), "white")
    refused = await comfy_manager.xyz_plot("a cat", "Var. strength", "0, 0.5", seed=3, init_image=image,
                                           mask=Image.new("L", (64, 64), 255), num_inference_steps=2)
    assert refused.status == "error" and "set Variation strength to 0 for inpaint" in refused.error
    assert not refused.batch  # nothing was made before the sentence
    forced = await comfy_manager.xyz_plot("a cat", "Var. strength", "0, 0.5", seed=3, backend="comfyui",
                                          width=64, height=64, num_inference_steps=2)
    assert forced.status == "error" and forced.error == "ComfyUI cannot make variation seeds."
