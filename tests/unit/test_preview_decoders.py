"""TAESD previews: a published-layout decoder file (.safetensors or .pth) loads into diffusers' AutoencoderTiny
decoder and decodes exactly as TAESD's own decoder does; a file that is no TAESD decoder, or a pickle holding more
than tensors, is a sentence and never runs code; the model folders find the files where A1111 and ComfyUI keep them."""
from __future__ import annotations

import pickle

import pytest
import torch

from engine.backends.preview_decoders import PreviewDecoders, load_taesd
from engine.model_files import PREVIEW_DECODER, ModelFolders
from tests.support.tiny_taesd import write_taesd_decoder


@pytest.mark.parametrize("name", ["taesd_decoder.safetensors", "taesd_decoder.pth"])
def test_the_published_layout_decodes_as_taesd_does(tmp_path, name):
    reference = write_taesd_decoder(tmp_path / name, seed=3)
    latents = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(1)) * 2
    decode = load_taesd(tmp_path / name, "cpu", torch.float32)
    got = decode(latents)
    with torch.no_grad():
        expected = reference(latents)[0]  # [0, 1]
    assert got.shape == (64, 96, 3) and got.dtype == torch.uint8
    want = (expected.permute(1, 2, 0) * 255).clamp(0, 255)
    assert (got.float() - want).abs().max() <= 1.0


def test_what_is_no_taesd_decoder_is_a_sentence(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(ValueError, match="is not a TAESD decoder"):
        load_taesd(tmp_path / "taesd_decoder.safetensors", "cpu", torch.float32)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))
    (tmp_path / "evil").mkdir()
    with open(tmp_path / "evil" / "taesd_decoder.pth", "wb") as handle:
        pickle.dump({"1.weight": Payload()}, handle)
    with pytest.raises(ValueError, match="could not be read"):
        load_taesd(tmp_path / "evil" / "taesd_decoder.pth", "cpu", torch.float32)
    decoders = PreviewDecoders()  # the backend's view: no decoder, previews by projection
    assert decoders.decoder(None, "cpu", torch.float32) is None


def test_model_folders_find_taesd_where_a1111_and_comfyui_keep_it(tmp_path):
    write_taesd_decoder(tmp_path / "webui" / "models" / "VAE-approx" / "taesdxl_decoder.pth")
    write_taesd_decoder(tmp_path / "ComfyUI" / "models" / "vae_approx" / "taesd_decoder.safetensors")
    (tmp_path / "webui" / "models" / "VAE-approx" / "model.pt").write_bytes(b"A1111's own approx NN")
    found = ModelFolders([tmp_path]).scan()
    decoders = {f.path.name: f.family for f in found if f.kind == PREVIEW_DECODER and not f.problem}
    assert decoders == {"taesdxl_decoder.pth": "sdxl", "taesd_decoder.safetensors": "sd15"}
    other = next(f for f in found if f.path.name == "model.pt")
    assert other.kind is None and "not a TAESD decoder" in other.problem


def test_the_preview_setting_is_checked_at_start():
    from engine.config import Settings

    assert Settings.from_env().previews == "auto" and Settings.from_env(previews="taesd").previews == "taesd"
    with pytest.raises(ValueError, match="GATOR_PREVIEWS must be one of auto, taesd, projection"):
        Settings.from_env(previews="sharp")


def test_a_failing_decoder_falls_back_to_the_projection_and_large_previews_are_shrunk(tmp_path):
    from engine.previews import StepPreviews

    def broken(latents):
        raise RuntimeError("CUDA out of memory")
    previews = StepPreviews("sd15", deferred=False, decode=broken)
    shown = previews.add(1, torch.randn(1, 4, 8, 8)) + previews.add(2, torch.randn(1, 4, 8, 8))
    assert [image.size for _, image in shown] == [(8, 8), (8, 8)] and previews.decode is None

    write_taesd_decoder(tmp_path / "taesd_decoder.safetensors")
    decode = load_taesd(tmp_path / "taesd_decoder.safetensors", "cpu", torch.float32)
    assert decode(torch.randn(1, 4, 96, 64)).shape == (512, 341, 3)  # 768x512 decoded, shrunk to 512 on its long side
