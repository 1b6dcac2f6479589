"""TAESD step previews on the local backend: with a TAESD decoder for the model's family in a VAE-approx folder (and
GATOR_PREVIEWS=taesd: auto uses it on GPUs only) every step's preview is the full-size picture TAESD decodes (not the
one-pixel-per-latent projection), with none it is the projection, and a damaged decoder file leaves the image
unharmed and the previews projected."""
from __future__ import annotations

import numpy as np

from engine.events import Done, Progress
from engine.manager import AIModelManager
from tests.support.ldm_checkpoint import cached_checkpoint
from tests.support.tiny_taesd import write_taesd_decoder

RUN = dict(model="tinyXL", width=64, height=64, num_inference_steps=2, seed=4)


async def previews_of(manager: AIModelManager, prompt: str = "a fox") -> tuple[list, np.ndarray]:
    previews, image = [], None
    async for event in manager.stream_image(prompt, **RUN):
        if isinstance(event, Progress) and event.preview is not None:
            previews.append(event.preview)
        elif isinstance(event, Done):
            assert event.result.status == "success", event.result.error
            image = np.asarray(event.result.image)
    return previews, image


async def test_taesd_previews_are_full_size_and_a_bad_file_falls_back(tmp_path, small_sdxl_manager):
    models = tmp_path / "webui" / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Stable-diffusion" / "tinyXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    manager = await small_sdxl_manager(tmp_path / "webui", previews="taesd")
    projected, plain = await previews_of(manager)
    assert [p.size for p in projected] == [(8, 8)] * 2  # one pixel per latent

    write_taesd_decoder(models / "VAE-approx" / "taesd_decoder.pth")  # SD 1.x: not for this SDXL model
    write_taesd_decoder(models / "VAE-approx" / "taesdxl_decoder.safetensors", seed=2)
    await manager.rescan_models()
    assert manager.status()["preview_decoders"] == ["taesd_decoder.pth", "taesdxl_decoder.safetensors"]
    decoded, image = await previews_of(manager)
    assert [p.size for p in decoded] == [(64, 64)] * 2  # TAESD: the picture's own size
    assert np.array_equal(image, plain)  # previews change nothing in the image

    # auto on the CPU: the projection (a TAESD preview costs 0.8 s a step at 512 px here)
    automatic = await small_sdxl_manager(tmp_path / "webui", previews="auto", output_dir=tmp_path / "auto")
    assert [p.size for p in (await previews_of(automatic))[0]] == [(8, 8)] * 2

    (models / "VAE-approx" / "taesdxl_decoder.safetensors").write_bytes(b"not a safetensors file")
    await manager.rescan_models()
    fallback, image = await previews_of(manager)
    assert [p.size for p in fallback] == [(8, 8)] * 2 and np.array_equal(image, plain)
