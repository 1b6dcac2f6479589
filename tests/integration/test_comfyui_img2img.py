"""Image-to-image on ComfyUI, against the fake ComfyUI (real sockets): the init image is uploaded to the server that
runs the job and the graph starts from it (LoadImage -> VAEEncode in place of the empty latent, the strength as the
denoise); the result has the init's size or the one asked; strength 0 gives the init back; a text-to-image graph is
unchanged; a server that refuses the upload is passed over like a dead one."""
from __future__ import annotations

import io
import json

import aiohttp
import numpy as np
import pytest
from PIL import Image

from engine.comfyui import ComfyUIClient, ComfyUIValidationError, InstalledModels
from engine.comfyui_answers import UnexpectedAnswer
from engine.config import Settings
from engine.manager import AIModelManager
from engine.request import GenerationRequest
from engine.workflows import WorkflowError, add_loras, bind, load_template, use_init_image, use_vae
from tests.conftest import CPU
from tests.support.fake_comfyui import FakeComfyUI

TINY = "comfyui:tiny-sd15.safetensors"
RUN = dict(num_inference_steps=3, seed=11, model=TINY, backend="comfyui")
REFUSE = dict(method="POST", status=400)  # ComfyUI's bare 400 to an upload it cannot store


def init_picture(width: int = 96, height: int = 64) -> Image.Image:
    ramp = (np.indices((height, width)).sum(0) * 3 % 256).astype(np.uint8)
    return Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], axis=-1))


def by_class(graph: dict, class_type: str) -> dict[str, dict]:
    return {nid: node["inputs"] for nid, node in graph.items() if node["class_type"] == class_type}


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    assert result.backend == "comfyui", result.fallback_reason
    return np.asarray(result.image.convert("RGB")).astype(int)


def the_start(graph: dict) -> tuple[str, dict, dict]:
    """(uploaded name, VAEEncode inputs, KSampler inputs) of an img2img graph, checking the links between them."""
    (load_id, load), = by_class(graph, "LoadImage").items()
    (encode_id, encode), = by_class(graph, "VAEEncode").items()
    (sampler,) = by_class(graph, "KSampler").values()
    assert encode["pixels"] == [load_id, 0] and sampler["latent_image"] == [encode_id, 0]
    return load["image"], encode, sampler


# ---------------------------------------------------------------------------- through the manager
async def test_the_graph_starts_from_the_uploaded_init_image(comfy_manager, fake):
    init = init_picture()
    result = await comfy_manager.generate_image("a fox", init_image=init, strength=0.6, **RUN)
    graph = fake.prompts[-1]
    name, encode, sampler = the_start(graph)
    assert list(fake.uploads) == [name] and name.startswith("gator-") and name.endswith(".png")
    assert Image.open(io.BytesIO(fake.uploads[name])).size == (96, 64)
    (decode,) = by_class(graph, "VAEDecode").values()
    assert encode["vae"] == decode["vae"] == ["4", 2]  # the checkpoint's own VAE, both ways
    assert sampler["denoise"] == 0.6
    assert not by_class(graph, "EmptyLatentImage")
    assert (result.width, result.height) == (96, 64) and pixels(result).shape == (64, 96, 3)
    assert result.strength == 0.6 and result.server == fake.url


async def test_an_asked_size_is_the_size_uploaded_and_made(comfy_manager, fake):
    result = await comfy_manager.generate_image("a fox", init_image=init_picture(), strength=0.5, width=64,
                                                height=72, resize_mode="crop and resize", **RUN)
    assert pixels(result).shape == (72, 64, 3)
    name, _, _ = the_start(fake.prompts[-1])
    assert Image.open(io.BytesIO(fake.uploads[name])).size == (64, 72)


async def test_strength_changes_the_pixels_and_zero_gives_the_init_back(comfy_manager, fake):
    init = init_picture()
    light = pixels(await comfy_manager.generate_image("a fox", init_image=init, strength=0.3, **RUN))
    strong = pixels(await comfy_manager.generate_image("a fox", init_image=init, strength=0.8, **RUN))
    kept = pixels(await comfy_manager.generate_image("a fox", init_image=init, strength=0.0, **RUN))
    assert the_start(fake.prompts[-1])[2]["denoise"] == 0.0
    start = np.asarray(init).astype(int)
    assert np.abs(kept - start).max() <= 2
    assert 0 < np.abs(light - start).mean() < np.abs(strong - start).mean()
    assert len(fake.uploads) == 3  # one upload per job, each under its own name


async def test_a_text_to_image_graph_is_unchanged(comfy_manager, fake):
    result = await comfy_manager.generate_image("a fox", width=64, height=64, **RUN)
    assert pixels(result).shape == (64, 64, 3) and result.strength is None
    graph = fake.prompts[-1]
    assert set(graph) == set(load_template("checkpoint_generic").graph)
    assert not by_class(graph, "LoadImage") and not by_class(graph, "VAEEncode") and not fake.uploads
    assert graph["5"]["class_type"] == "EmptyLatentImage" and graph["3"]["inputs"]["denoise"] == 1.0
    backend = comfy_manager.backends["comfyui"]
    variant = backend.variant_for(backend.find(TINY), InstalledModels(checkpoints=list(fake.checkpoints)))
    req = GenerationRequest(prompt="a fox", width=64, height=64, **RUN).validated(["comfyui"])
    assert json.dumps(graph) == json.dumps(backend.build_graph(req, variant))


async def test_a_refused_upload_falls_back_locally_with_a_sentence(comfy_manager, fake):
    fake.answer_next("/upload/image", b"", **REFUSE)
    result = await comfy_manager.generate_image("a fox", init_image=init_picture(), strength=0.5,
                                                **{**RUN, "backend": "auto", "model": None})
    assert result.status == "success" and result.backend == "diffusers", result.error
    assert f"ComfyUI at {fake.url} answered HTTP 400 to POST /upload/image." in result.fallback_reason
    assert (result.width, result.height) == (96, 64)
    assert fake.canned_served == ["POST /upload/image"] and not fake.prompts  # nothing was queued there


async def test_a_refused_upload_on_forced_comfyui_is_a_sentence(comfy_manager, fake):
    fake.answer_next("/upload/image", b"", **REFUSE)
    result = await comfy_manager.generate_image("a fox", init_image=init_picture(), **RUN)
    assert result.status == "error" and "POST /upload/image" in result.error
    assert "No other ComfyUI server" in result.error


async def test_a_refused_upload_goes_to_the_next_server_each_tried_once(tmp_path, tiny_model_dir):
    with FakeComfyUI(step_delay_s=0.005) as a, FakeComfyUI(step_delay_s=0.005) as b:
        settings = Settings(comfyui_urls=[a.url, b.url], output_dir=tmp_path / "outputs",
                            tiny_model_dir=tiny_model_dir, health_interval_s=0.2, health_timeout_s=0.5,
                            comfyui_timeout_s=3.0)
        mgr = AIModelManager(settings, hardware=CPU)
        await mgr.initialize_models()
        try:
            a.answer_next("/upload/image", b"", **REFUSE)  # equal queues: the first request goes to a first
            moved = await mgr.generate_image("a fox", init_image=init_picture(), strength=0.4, **RUN)
            a.answer_next("/upload/image", b"", **REFUSE)
            b.answer_next("/upload/image", b"", **REFUSE)
            refused = await mgr.generate_image("a fox", init_image=init_picture(), strength=0.4, **RUN)
        finally:
            mgr.shutdown()
    pixels(moved)
    assert moved.server == b.url and not a.prompts and not a.uploads
    name, _, sampler = the_start(b.prompts[-1])
    assert list(b.uploads) == [name] and sampler["denoise"] == 0.4
    assert refused.status == "error" and "No other ComfyUI server" in refused.error
    assert a.canned_served == ["POST /upload/image"] * 2 and b.canned_served == ["POST /upload/image"]
    assert len(b.prompts) == 1


# ---------------------------------------------------------------------------- the graph
def sd_graph() -> dict:
    return bind(load_template("checkpoint_generic"), {"ckpt_name": "tiny-sd15.safetensors", "seed": 3, "steps": 2,
                                                      "width": 32, "height": 32})


def flux_custom_graph() -> dict:
    """The recorded FLUX custom-sampler graph (SamplerCustomAdvanced, BasicScheduler, ModelSamplingFlux)."""
    return json.loads(json.dumps({
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                          "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "30": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["12", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                             "width": 32, "height": 32}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["11", 0]}},
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["30", 0], "conditioning": ["26", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"model": ["30", 0], "scheduler": "simple", "steps": 2,
                                                          "denoise": 1.0}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                                                                 "sampler": ["16", 0], "sigmas": ["17", 0],
                                                                 "latent_image": ["27", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "flux1-dev"}},
    }))


def test_use_init_image_replaces_the_empty_latent_and_leaves_the_rest():
    graph = sd_graph()
    out = use_init_image(graph, "gator-x.png", 0.35)
    assert graph == sd_graph()  # untouched
    assert out["10"] == {"class_type": "LoadImage", "inputs": {"image": "gator-x.png"}}
    assert out["11"] == {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    assert out["3"]["inputs"]["latent_image"] == ["11", 0] and out["3"]["inputs"]["denoise"] == 0.35
    assert "5" not in out
    changed = {"3", "5", "10", "11"}
    assert {k: v for k, v in out.items() if k not in changed} == {k: v for k, v in graph.items() if k not in changed}


def test_use_init_image_after_loras_and_a_vae_file_encodes_with_that_vae_and_new_ids():
    graph = use_vae(add_loras(sd_graph(), [("a.safetensors", 0.5)]), "other.safetensors")  # LoRA 10, VAELoader 11
    out = use_init_image(graph, "gator-x.png", 0.5)
    assert set(out) - set(graph) == {"12", "13"}
    assert out["13"]["inputs"] == {"pixels": ["12", 0], "vae": ["11", 0]}
    assert out["8"]["inputs"]["vae"] == ["11", 0]


@pytest.mark.parametrize("name", ["checkpoint_generic", "flux1_dev_split", "flux1_dev_fp8_checkpoint"])
def test_every_template_takes_an_init_image(name):
    graph = bind(load_template(name), {"prompt": "a fox", "seed": 3})
    out = use_init_image(graph, "in.png", 0.7)
    name_, encode, sampler = the_start(out)
    (decode,) = by_class(out, "VAEDecode").values()
    assert name_ == "in.png" and encode["vae"] == decode["vae"] and sampler["denoise"] == 0.7
    assert not by_class(out, "EmptyLatentImage") and not by_class(out, "EmptySD3LatentImage")


def test_a_custom_sampler_graph_takes_the_denoise_on_its_scheduler():
    out = use_init_image(flux_custom_graph(), "in.png", 0.25)
    assert out["13"]["inputs"]["latent_image"] == ["32", 0]
    assert out["32"]["inputs"] == {"pixels": ["31", 0], "vae": ["10", 0]}
    assert out["17"]["inputs"]["denoise"] == 0.25 and "27" not in out


def test_a_graph_without_a_latent_or_a_denoise_is_a_clear_error():
    graph = sd_graph()
    del graph["3"]["inputs"]["latent_image"]
    with pytest.raises(WorkflowError, match="no sampler 'latent_image' input"):
        use_init_image(graph, "in.png", 0.5)
    graph = sd_graph()
    del graph["3"]["inputs"]["denoise"]
    with pytest.raises(WorkflowError, match=r"KSampler \(node 3\) has no denoise"):
        use_init_image(graph, "in.png", 0.5)
    with pytest.raises(WorkflowError, match="between 0 and 1"):
        use_init_image(sd_graph(), "in.png", 1.5)


# ---------------------------------------------------------------------------- the client and the fake
async def test_upload_returns_the_stored_name_and_loadimage_lists_it(fake):
    client = ComfyUIClient(fake.url)
    name = await client.upload_image(init_picture(40, 24), "my init!")
    assert name.startswith("gator-my-init-") and name.endswith(".png")
    assert Image.open(io.BytesIO(fake.uploads[name])).size == (40, 24)
    info = await client.object_info("LoadImage")
    assert name in info["input"]["required"]["image"][0] and info["output"] == ["IMAGE", "MASK"]
    assert (await client.object_info("VAEEncode"))["output"] == ["LATENT"]
    fake.answer_next("/upload/image", {"name": "x.png", "subfolder": "gator", "type": "input"}, method="POST")
    assert await client.upload_image(init_picture(), "") == "gator/x.png"
    fake.answer_next("/upload/image", {"subfolder": ""}, method="POST")
    with pytest.raises(UnexpectedAnswer, match=r"answer to POST /upload/image: name is missing"):
        await client.upload_image(init_picture(), "")


async def test_the_fake_renders_img2img_from_the_upload_and_the_denoise(fake):
    client = ComfyUIClient(fake.url)
    init = init_picture(36, 20)  # the VAE crops it to 32 x 16, centred
    name = await client.upload_image(init, "t")

    async def render(graph: dict) -> np.ndarray:
        events = [e async for e in client.run(graph)]
        return np.asarray(events[-1].image.convert("RGB")).astype(int)

    cropped = np.asarray(init.crop((2, 2, 34, 18))).astype(int)
    assert np.array_equal(await render(use_init_image(sd_graph(), name, 0.0)), cropped)
    half = await render(use_init_image(sd_graph(), name, 0.5))
    full = await render(use_init_image(sd_graph(), name, 1.0))
    assert half.shape == full.shape == (16, 32, 3)
    assert 0 < np.abs(half - cropped).mean() < np.abs(full - cropped).mean()
    assert len(np.unique(full.reshape(-1, 3), axis=0)) == 1  # denoise 1: the plain render, nothing of the init
    fake.install_flux()
    assert np.array_equal(await render(use_init_image(flux_custom_graph(), name, 0.0)), cropped)


async def test_a_loadimage_of_a_file_never_uploaded_is_refused_as_the_real_server_does(fake):
    with pytest.raises(ComfyUIValidationError) as err:
        await ComfyUIClient(fake.url).submit(use_init_image(sd_graph(), "never.png", 0.5), "test")
    (node,) = err.value.node_errors.values()
    assert node["class_type"] == "LoadImage"
    assert node["errors"] == [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                               "details": "image - Invalid image file: never.png",
                               "extra_info": {"input_name": "image"}}]
    assert "Invalid image file: never.png" in str(err.value) and not err.value.missing_files


async def test_the_fake_upload_renames_a_different_file_unless_told_to_overwrite(fake):
    async def post(data: bytes, overwrite: str | None) -> dict:
        form = aiohttp.FormData()
        form.add_field("image", data, filename="same.png", content_type="image/png")
        if overwrite is not None:
            form.add_field("overwrite", overwrite)
        async with aiohttp.ClientSession() as s, s.post(fake.url + "/upload/image", data=form) as r:
            return await r.json()

    assert await post(b"one", None) == {"name": "same.png", "subfolder": "", "type": "input"}
    assert (await post(b"one", None))["name"] == "same.png"  # the same file: kept
    assert (await post(b"two", None))["name"] == "same (1).png"
    assert (await post(b"three", "true"))["name"] == "same.png" and fake.uploads["same.png"] == b"three"
    async with aiohttp.ClientSession() as s, s.post(fake.url + "/upload/image", data={"type": "input"}) as r:
        assert r.status == 400
