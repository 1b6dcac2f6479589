"""A1111's hires checkpoint: the hires pass redraws with another model (locally, switching the loaded pipeline; on
ComfyUI, the second graph loads it); the image records the first pass's model with the hires checkpoint beside it
(PNG and PNG info); an unknown one is a sentence before any work."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.events import Progress
from engine.outputs import read_parameters
from engine.png_info import png_info
from tests.support.ldm_checkpoint import cached_checkpoint

HIRES = dict(width=64, height=64, num_inference_steps=2, seed=3, model="tiny", hires_scale=1.5, hires_strength=0.5,
             hires_steps=4)


async def test_the_hires_pass_redraws_with_the_hires_checkpoint(tmp_path, small_sdxl_manager):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "detailXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    manager = await small_sdxl_manager(folder)
    backend = manager.backends["diffusers"]
    same = await manager.generate_image("a fox", **HIRES)
    assert same.status == "success" and same.hires_checkpoint is None, same.error
    other = await manager.generate_image("a fox", hires_checkpoint="detailXL", **HIRES)
    assert other.status == "success", other.error
    assert backend.loaded_model == "detailXL"  # the pipeline the hires pass ran on
    assert (other.model_id, other.hires_checkpoint, other.image.size) == ("tiny", "detailXL", (96, 96))
    assert np.abs(np.asarray(other.image).astype(int) - np.asarray(same.image).astype(int)).mean() > 1
    text = Image.open(other.path).text["parameters"]
    assert "Model: Tiny demo model" in text and "Hires checkpoint: detailXL" in text
    assert read_parameters(other.path)["hires_checkpoint"] == "detailXL"
    assert png_info(other.path)["hires_checkpoint"] == "detailXL"
    again = await manager.generate_image("a fox", hires_checkpoint="Use same checkpoint", **HIRES)
    assert again.hires_checkpoint is None and backend.loaded_model == "tiny"
    assert np.array_equal(np.asarray(again.image), np.asarray(same.image))


async def test_an_unknown_hires_checkpoint_is_a_sentence_before_any_work(manager):
    events = [event async for event in manager.stream_image("a fox", hires_checkpoint="nowhere", **HIRES)]
    assert not [e for e in events if isinstance(e, Progress)]
    assert "Hires checkpoint: Unknown model 'nowhere'. Available models:" in events[-1].error
    odd = await manager.generate_image("a fox", hires_checkpoint=5, **HIRES)
    assert odd.status == "error" and "Hires checkpoint must be a model's name (or Use same checkpoint)." in odd.error
    off = await manager.generate_image("a fox", hires_checkpoint="nowhere", **{**HIRES, "hires_scale": 1.0})
    assert off.status == "success" and off.hires_checkpoint is None, off.error  # matters only with the hires fix


async def test_on_comfyui_the_second_graph_loads_the_hires_checkpoint(comfy_manager, fake):
    fake.checkpoints.append("detail-sd15.safetensors")  # put in ComfyUI's folder, then Rescan: listed at once
    listed = {m["id"]: m for m in await comfy_manager.rescan_models()}
    assert listed["comfyui:detail-sd15.safetensors"]["available"]
    sent = len(fake.prompts)
    result = await comfy_manager.generate_image("a lighthouse", backend="comfyui",
                                                hires_checkpoint="comfyui:detail-sd15.safetensors",
                                                **{**HIRES, "model": "comfyui:tiny-sd15.safetensors"})
    assert result.status == "success" and result.backend == "comfyui", result.error
    first, second = fake.prompts[sent:]

    def checkpoint(graph):
        (node,) = [n["inputs"] for n in graph.values() if n["class_type"] == "CheckpointLoaderSimple"]
        return node["ckpt_name"]

    assert (checkpoint(first), checkpoint(second)) == ("tiny-sd15.safetensors", "detail-sd15.safetensors")
    assert result.model_id == "comfyui:tiny-sd15.safetensors"
    assert result.hires_checkpoint == "comfyui:detail-sd15.safetensors"


async def test_a_hires_pass_that_falls_back_records_no_hires_checkpoint(comfy_manager, fake):
    """The second pass fails on ComfyUI and the local model redraws it: that is a fallback, not a hires checkpoint the
    user chose (Reuse must not bring one back)."""
    from engine.events import Done
    from ui.image_options import saved_hires

    armed, done = False, None
    async for event in comfy_manager.stream_image("a lighthouse", **{**HIRES, "model": None, "hires_steps": 2}):
        if isinstance(event, Progress) and not armed:
            fake.fail_next_execution()  # the next graph to run, the hires pass's, fails
            armed = True
        if isinstance(event, Done):
            done = event.result
    assert done is not None and done.backend == "diffusers" and done.fallback_reason, done
    assert done.hires_checkpoint is None and "Hires checkpoint" not in Image.open(done.path).text["parameters"]
    reused = saved_hires(png_info(done.path), comfy_manager.available_upscalers())
    assert reused["hires_checkpoint"] == "Use same checkpoint"
