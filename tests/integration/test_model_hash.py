"""A checkpoint's PNG carries A1111's "Model hash" (the file's SHA-256, first 10 hex digits), hashed while the
file loads and remembered across restarts; a model that is not one file (the tiny model) has none. A LoRA's
"Lora hashes" entry is the SHA-256 of its tensor data (after the safetensors header), first 12 hex digits."""
from __future__ import annotations

import hashlib
import shutil
import time

from PIL import Image

from engine.file_hashes import TENSOR_DATA
from engine.outputs import read_parameters
from tests.integration.test_loras_local import lora_manager  # noqa: F401  (LoRAs made for the tiny model)
from tests.support.ldm_checkpoint import cached_checkpoint

SMALL = dict(width=64, height=64, num_inference_steps=2, seed=5)


def models_with_checkpoint(tmp_path, name: str):
    """A models folder holding a (small SDXL) checkpoint `name`.safetensors; the folder, the file and its Model
    hash. A copy, not a link: the hash is the file's own."""
    models = tmp_path / "models"
    models.mkdir()
    checkpoint = models / f"{name}.safetensors"
    shutil.copy(cached_checkpoint("sdxl-small"), checkpoint)
    return models, checkpoint, hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:10]


def wait_for_hash(manager, checkpoint) -> None:
    hashes = manager.backends["diffusers"].hashes
    deadline = time.monotonic() + 60
    while hashes.known(checkpoint) is None and time.monotonic() < deadline:
        time.sleep(0.1)


async def test_a_checkpoint_png_carries_its_model_hash(tmp_path, small_sdxl_manager):
    models, checkpoint, expected = models_with_checkpoint(tmp_path, "hashed_one")
    manager = await small_sdxl_manager(models)
    await manager.generate_image("a lighthouse", model="hashed_one", **SMALL)  # the load starts the hashing
    wait_for_hash(manager, checkpoint)
    result = await manager.generate_image("a lighthouse", model="hashed_one", **SMALL)
    assert result.model_hash == expected, result.error
    assert f"Model hash: {expected}, Model: " in Image.open(result.path).text["parameters"]  # A1111's order
    assert read_parameters(result.path)["model_hash"] == expected
    tiny = await manager.generate_image("a lighthouse", model="tiny", **SMALL)
    assert tiny.model_hash is None and "Model hash" not in Image.open(tiny.path).text["parameters"]
    manager.shutdown()

    restarted = await small_sdxl_manager(models)  # the hash is remembered: the first image has it
    first = await restarted.generate_image("a lighthouse", model="hashed_one", **SMALL)
    assert first.model_hash == expected, first.error


def _tensor_data_hash(path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


async def test_a_lora_png_carries_a1111s_lora_hashes(lora_manager):
    manager = lora_manager
    hashes = manager.backends["diffusers"].hashes
    folder = manager.settings.models_dir / "Lora"
    expected = {name: _tensor_data_hash(folder / f"{name}.safetensors") for name in ("tinyDetail", "tinyStyle")}
    await manager.generate_image("a fox <lora:tinyDetail:0.8> <lora:tinyStyle:0.3>", model="tiny", **SMALL)
    deadline = time.monotonic() + 30
    while not all(hashes.known(folder / f"{n}.safetensors", TENSOR_DATA) for n in expected) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    result = await manager.generate_image("a fox <lora:tinyDetail:0.8> <lora:tinyStyle:0.3>", model="tiny", **SMALL)
    text = f"tinyDetail: {expected['tinyDetail']}, tinyStyle: {expected['tinyStyle']}"
    assert result.lora_hashes == text, result.error
    assert f'Lora hashes: "{text}"' in Image.open(result.path).text["parameters"]  # quoted: it holds commas
    assert read_parameters(result.path)["lora_hashes"] == text
    plain = await manager.generate_image("a fox", model="tiny", **SMALL)
    assert plain.lora_hashes is None and "Lora hashes" not in Image.open(plain.path).text["parameters"]


async def test_a_checkpoint_is_found_by_its_model_hash(tmp_path, small_sdxl_manager):
    """As A1111 does for an image whose checkpoint has another name here: its "Model hash" finds the file, once this
    app has hashed it (when it first loaded; remembered across restarts). Nothing unknown or too short matches."""
    models, checkpoint, expected = models_with_checkpoint(tmp_path, "renamed_here")
    manager = await small_sdxl_manager(models)
    assert manager.model_with_hash(expected) is None  # not hashed yet: nothing is read to answer
    await manager.generate_image("a lighthouse", model="renamed_here", **SMALL)
    wait_for_hash(manager, checkpoint)
    assert manager.model_with_hash(expected) == "renamed_here"
    assert manager.model_with_hash(expected.upper() + " ") == "renamed_here"
    assert manager.model_with_hash("0123456789") is None and manager.model_with_hash(expected[:6]) is None
    assert manager.model_with_hash(None) is None
    assert manager.knows_model("renamed_here") and not manager.knows_model("someone_elses_name")
