"""FreeU on both backends: locally diffusers' enable_freeu with the family's values changes the image and leaves
nothing behind for the next request; on ComfyUI a FreeU node (the family's b1, b2, s1, s2) sits between the model
(after its LoRAs) and the sampler; FLUX ignores it and the result says so; the PNG records it."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.outputs import read_parameters
from engine.registry import family_of
from tests.integration.test_fallback import wait_until

SIZE = dict(width=64, height=64, num_inference_steps=3, seed=5)


async def test_freeu_changes_the_local_image_and_leaves_nothing_behind(manager):
    plain = await manager.generate_image("a fox", model="tiny", **SIZE)
    freeu = await manager.generate_image("a fox", model="tiny", freeu=True, **SIZE)
    again = await manager.generate_image("a fox", model="tiny", **SIZE)
    assert plain.status == freeu.status == again.status == "success", freeu.error
    assert not np.array_equal(np.asarray(plain.image), np.asarray(freeu.image))
    assert np.array_equal(np.asarray(plain.image), np.asarray(again.image))
    assert freeu.freeu is True and plain.freeu is None and freeu.warnings == []
    assert "FreeU: True" in Image.open(freeu.path).text["parameters"]
    assert read_parameters(freeu.path)["freeu"] is True and "FreeU" not in Image.open(plain.path).text["parameters"]
    wrong = await manager.generate_image("a fox", model="tiny", freeu="yes", **SIZE)
    assert wrong.status == "error" and "FreeU must be true or false" in wrong.error


async def test_comfyui_gets_a_freeu_node_after_the_loras(comfy_manager, fake):
    fake.loras = ["detail_tweaker.safetensors"]
    monitor = comfy_manager.backends["comfyui"].monitor
    monitor.refresh_models(fake.url)
    monitor.poll_now()
    result = await comfy_manager.generate_image("a fox <lora:detail_tweaker:0.5>", backend="comfyui", freeu=True,
                                                **SIZE)
    assert result.status == "success" and result.backend == "comfyui" and result.freeu is True, result.error
    graph = fake.prompts[-1]
    sampler = next(node["inputs"] for node in graph.values() if node["class_type"] == "KSampler")
    freeu = graph[sampler["model"][0]]
    assert freeu["class_type"] == "FreeU"
    assert graph[freeu["inputs"]["model"][0]]["class_type"] == "LoraLoader"
    expected = family_of("sd15").freeu  # the fake's checkpoint is an SD 1.5 one
    assert {key: freeu["inputs"][key] for key in ("b1", "b2", "s1", "s2")} == expected


async def test_flux_ignores_freeu_and_says_so(comfy_manager, fake):
    fake.install_flux()
    comfy_manager.backends["comfyui"].monitor.refresh_models(fake.url)
    assert wait_until(lambda: "flux.1-dev" in {m.id for m in comfy_manager.backends["comfyui"].models()})
    result = await comfy_manager.generate_image("a fox", model="flux.1-dev", backend="comfyui", freeu=True, **SIZE)
    assert result.status == "success" and result.freeu is None, result.error
    assert not any(node["class_type"] == "FreeU" for node in fake.prompts[-1].values())
    assert any("FreeU was not used" in warning for warning in result.warnings), result.warnings


def test_freeu_off_leaves_the_up_blocks_as_they_were(tiny_model_dir):
    """diffusers' disable_freeu leaves its attributes behind (set to None), which a compiled UNet's guards would see:
    turning FreeU off here removes them."""
    from diffusers import StableDiffusionPipeline

    from engine.backends.diffusers import FREEU_ATTRIBUTES, set_freeu

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model_dir))
    before = [sorted(vars(block)) for block in pipe.unet.up_blocks]
    set_freeu(pipe, family_of("sd15").freeu)
    assert all(getattr(pipe.unet.up_blocks[0], name) is not None for name in FREEU_ATTRIBUTES)
    set_freeu(pipe, None)
    assert [sorted(vars(block)) for block in pipe.unet.up_blocks] == before


def test_a_custom_samplers_guider_and_shared_model_links_get_one_freeu_each():
    from engine.workflows import use_freeu

    graph = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "x"}},
             "2": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["5", 0]}},
             "3": {"class_type": "KSampler", "inputs": {"model": ["1", 0]}},
             "4": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0]}}}
    out = use_freeu(graph, {"b1": 1.1, "b2": 1.2, "s1": 0.6, "s2": 0.4})
    freeu = [node_id for node_id, node in out.items() if node["class_type"] == "FreeU"]
    assert len(freeu) == 1 and all(out[n]["inputs"]["model"] == [freeu[0], 0] for n in ("2", "3", "4"))
    assert out[freeu[0]]["inputs"]["model"] == ["1", 0] and graph["3"]["inputs"]["model"] == ["1", 0]
