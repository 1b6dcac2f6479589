"""CFG rescale (Lin et al.: what v-prediction models need against strong guidance's overexposure) on both backends:
locally diffusers' guidance_rescale where the pipeline has it, the same rescale through the UNet's output where it
has not (the two give the same image),
on ComfyUI a core RescaleCFG node between the model (after LoRAs and FreeU) and the sampler, none for FLUX (which
says why); recorded in the PNG, read back as a number, and an X/Y/Z axis."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.backends.guidance_rescale import rescaled_guidance
from engine.outputs import read_parameters
from engine.workflows import use_freeu, use_rescale_cfg
from tests.integration.test_comfyui_img2img import by_class, flux_custom_graph, sd_graph
from tests.integration.test_fallback import wait_until

SIZE = dict(width=64, height=64, num_inference_steps=6, seed=1, guidance_scale=20)  # strong guidance: a clear effect


async def test_local_cfg_rescale_changes_the_image_and_is_recorded(manager):
    plain = await manager.generate_image("a fox", negative_prompt="zzz qqq", model="tiny", **SIZE)
    rescaled = await manager.generate_image("a fox", negative_prompt="zzz qqq", model="tiny", cfg_rescale=1.0, **SIZE)
    assert plain.status == rescaled.status == "success", rescaled.error
    assert np.abs(np.asarray(plain.image).astype(int) - np.asarray(rescaled.image)).mean() > 1
    assert (rescaled.cfg_rescale, plain.cfg_rescale, rescaled.warnings) == (1.0, None, [])
    assert "CFG rescale: 1" in Image.open(rescaled.path).text["parameters"]
    assert read_parameters(rescaled.path)["cfg_rescale"] == 1.0
    assert "CFG rescale" not in Image.open(plain.path).text["parameters"]


async def test_a_pipeline_without_guidance_rescale_gets_it_through_the_unet(manager):
    first = await manager.generate_image("a fox", model="tiny", **SIZE)  # SD 1.5 img2img has no guidance_rescale
    plain = await manager.generate_image("a fox", model="tiny", init_image=first.image, strength=0.6, **SIZE)
    redrawn = await manager.generate_image("a fox", model="tiny", init_image=first.image, strength=0.6,
                                           cfg_rescale=1.0, **SIZE)
    assert redrawn.status == "success" and redrawn.cfg_rescale == 1.0 and redrawn.warnings == [], redrawn.error
    assert np.abs(np.asarray(plain.image).astype(int) - np.asarray(redrawn.image)).mean() > 1
    # the same rescale as diffusers' own: text to image both ways gives the same image
    pipe = manager.backends["diffusers"].pool[0].pipe
    call = dict(prompt="a fox", negative_prompt="zzz qqq", width=64, height=64, num_inference_steps=4,
                guidance_scale=20, output_type="np")
    native = pipe(generator=torch.Generator("cpu").manual_seed(1), guidance_rescale=0.7, **call).images[0]
    with rescaled_guidance(pipe, 0.7, 20):
        hooked = pipe(generator=torch.Generator("cpu").manual_seed(1), **call).images[0]
    unhooked = pipe(generator=torch.Generator("cpu").manual_seed(1), **call).images[0]
    assert np.allclose(native, hooked, atol=1e-5) and not np.allclose(native, unhooked, atol=1e-3)


async def test_no_classifier_free_guidance_no_rescale_and_a_bad_value_is_a_sentence(manager):
    unguided = await manager.generate_image("a fox", model="tiny", cfg_rescale=0.7, **{**SIZE, "guidance_scale": 1})
    assert unguided.status == "success" and unguided.cfg_rescale is None, unguided.error
    assert unguided.warnings == ["CFG rescale 0.7 was not used: a guidance scale of 1 or less samples without "
                                 "classifier-free guidance."]
    wrong = await manager.generate_image("a fox", model="tiny", cfg_rescale=1.5, **SIZE)
    assert wrong.status == "error" and "CFG rescale must be between 0 and 1" in wrong.error, wrong.error


async def test_an_xyz_axis_varies_it(manager):
    grid = await manager.xyz_plot("a fox", "CFG Rescale", "0, 1", model="tiny", **SIZE)
    assert grid.status == "success", grid.error
    assert [cell["cfg_rescale"] for cell in grid.batch] == [None, 1.0]


def test_rescale_cfg_sits_after_freeu_before_every_sampler():
    out = use_rescale_cfg(use_freeu(sd_graph(), {"b1": 1.5, "b2": 1.6, "s1": 0.9, "s2": 0.2}), 0.7)
    (sampler,) = by_class(out, "KSampler").values()
    rescale = out[sampler["model"][0]]
    assert rescale["class_type"] == "RescaleCFG" and rescale["inputs"]["multiplier"] == 0.7
    assert out[rescale["inputs"]["model"][0]]["class_type"] == "FreeU"
    custom = use_rescale_cfg(flux_custom_graph(), 0.5)
    (guider,) = by_class(custom, "BasicGuider").values()
    assert custom[guider["model"][0]]["class_type"] == "RescaleCFG"


async def test_comfyui_gets_a_rescale_cfg_node_and_flux_says_why_not(comfy_manager, fake):
    result = await comfy_manager.generate_image("a fox", backend="comfyui", cfg_rescale=0.7, **SIZE)
    assert result.status == "success" and result.backend == "comfyui" and result.cfg_rescale == 0.7, result.error
    (rescale,) = by_class(fake.prompts[-1], "RescaleCFG").values()
    assert rescale["multiplier"] == 0.7 and fake.prompts[-1][rescale["model"][0]]["class_type"] == \
        "CheckpointLoaderSimple"
    fake.install_flux()
    comfy_manager.backends["comfyui"].monitor.refresh_models(fake.url)
    assert wait_until(lambda: "flux.1-dev" in {m.id for m in comfy_manager.backends["comfyui"].models()})
    flux = await comfy_manager.generate_image("a fox", model="flux.1-dev", backend="comfyui", cfg_rescale=0.7,
                                              **SIZE)
    assert flux.status == "success" and flux.cfg_rescale is None, flux.error
    assert not by_class(fake.prompts[-1], "RescaleCFG")
    assert "CFG rescale 0.7 was not used: FLUX samples without classifier-free guidance (its guidance is distilled " \
           "into the model)." in flux.warnings
