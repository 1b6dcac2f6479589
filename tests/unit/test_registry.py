"""Catalogue, hardware-based choice and weight discovery (probe values faked, real code paths)."""
from __future__ import annotations

import pytest

from engine.backends.diffusers import DiffusersBackend
from engine.registry import Hardware, find_model, fits, load_catalogue, needs_offload
from engine.weights import Missing, WeightSource, locate_weights


def hw(device="cuda", vram=0.0, ram=32.0):
    return Hardware(device=device, device_name="Test GPU", vram_gb=vram, ram_gb=ram)


def best_local_model(hardware: Hardware, available: set[str] | None = None):
    """The local backend's choice on `hardware` when the weights of `available` (default: all) are here."""
    backend = DiffusersBackend(hardware)
    backend.weights = {s.id: WeightSource("folder", s.id) for s in load_catalogue()
                       if s.backend == "diffusers" and (available is None or s.id in available or s.builtin)}
    return backend.best()


def test_catalogue_has_the_promised_models():
    ids = {s.id: s for s in load_catalogue()}
    assert ids["flux.1-dev"].backend == "comfyui"
    assert ids["sdxl-1.0"].hub_id == "stabilityai/stable-diffusion-xl-base-1.0"
    assert ids["stable-diffusion-v1-5"].hub_id == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert ids["tiny"].builtin and ids["tiny"].backend == "diffusers"
    assert (ids["stable-diffusion-v1-5"].license, ids["sdxl-1.0"].license, ids["flux.1-dev"].license) == \
        ("CreativeML Open RAIL-M", "CreativeML Open RAIL++-M", "FLUX.1 [dev] Non-Commercial License")
    assert ids["tiny"].license.startswith("Gator Studio's own") and ids["flux.1-schnell"].license == "Apache-2.0"
    for spec in ids.values():
        assert spec.size_gb > 0 and spec.min_vram_gb >= 0 and spec.min_ram_gb >= 0
    assert find_model("SDXL 1.0").id == "sdxl-1.0"


@pytest.mark.parametrize("hardware,expected", [
    (hw(vram=24, ram=64), "sdxl-1.0"),
    (hw(vram=8, ram=32), "sdxl-1.0"),
    (hw(vram=6, ram=32), "stable-diffusion-v1-5"),
    (hw(vram=2, ram=32), "tiny"),
    (hw(device="mps", vram=12, ram=16), "sdxl-1.0"),
    (hw(device="cpu", vram=0, ram=24), "sdxl-1.0"),
    (hw(device="cpu", vram=0, ram=12), "stable-diffusion-v1-5"),
    (hw(device="cpu", vram=0, ram=4), "tiny"),
])
def test_best_model_that_fits(hardware, expected):
    assert best_local_model(hardware).id == expected


def test_weights_that_are_missing_rule_a_model_out():
    big = hw(vram=24, ram=64)
    assert best_local_model(big, available={"stable-diffusion-v1-5"}).id == "stable-diffusion-v1-5"
    assert best_local_model(big, available=set()).id == "tiny"


def test_offload_only_when_gpu_memory_is_tight():
    sdxl = find_model("sdxl-1.0")
    assert needs_offload(sdxl, hw(vram=8))
    assert not needs_offload(sdxl, hw(vram=24))
    assert not needs_offload(sdxl, hw(device="cpu"))
    assert fits(find_model("tiny"), hw(device="cpu", ram=1))


def test_weights_from_folder_single_file_or_missing(tmp_path):
    sd15 = find_model("stable-diffusion-v1-5")
    missing = locate_weights(sd15, tmp_path, tmp_path / "tiny")
    assert isinstance(missing, Missing) and "weights not found" in missing.reason and str(tmp_path) in missing.reason
    (tmp_path / sd15.single_file).write_bytes(b"placeholder")
    assert locate_weights(sd15, tmp_path, tmp_path / "tiny") == WeightSource("single_file", str(tmp_path / sd15.single_file))
    folder = tmp_path / sd15.id
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    assert locate_weights(sd15, tmp_path, tmp_path / "tiny") == WeightSource("folder", str(folder))
    assert locate_weights(sd15, None, tmp_path, allow_downloads=True) == WeightSource("hub_download", sd15.hub_id)


async def test_broken_weights_fall_back_to_tiny_with_a_warning(settings, tiny_model_dir):
    """A folder that claims to be SD 1.5 but does not load: the request still succeeds on tiny."""
    from engine.manager import AIModelManager

    broken = settings.models_dir / "stable-diffusion-v1-5"
    broken.mkdir(parents=True)
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    mgr = AIModelManager(settings, hardware=hw(device="cpu", ram=16))
    await mgr.initialize_models()
    assert mgr.backends["diffusers"].best().id == "stable-diffusion-v1-5"
    result = await mgr.generate_image("a cat", width=64, height=64, num_inference_steps=2, seed=1)
    assert result["status"] == "success", result["error"]
    assert result["model_id"] == "tiny"
    assert any(w.startswith("Stable Diffusion 1.5 could not be loaded from stable-diffusion-v1-5 (")
               for w in result["warnings"]), result["warnings"]


def test_the_hardware_line_gives_memory_as_the_status_table_does():
    """One tenth of a GiB, like the status tab's RAM column (a 23.47 GiB machine read 23 in one and 23.5 in the other)."""
    assert Hardware(device="cpu", device_name="cpu", vram_gb=0.0, ram_gb=23.47).describe() == "CPU, 23.5 GiB RAM"
    assert (Hardware(device="cuda", device_name="H100", vram_gb=79.19, ram_gb=125.8).describe()
            == "H100 (79.2 GiB), 125.8 GiB RAM")
