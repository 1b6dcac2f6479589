"""The user's model files: found in A1111 and ComfyUI layouts, told apart by their safetensors header alone
(kind, family, inpainting), and bad files named with a sentence instead of crashing a scan."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from engine.model_files import (CHECKPOINT, CONTROLNET, EMBEDDING, LORA, UPSCALER, VAE, ModelFolders, classify,
                                inspect, read_header)

UNET_K = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def write(path: Path, table: dict[str, tuple[int, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: np.zeros(shape, dtype=np.float16) for name, shape in table.items()}, str(path))
    return path


SD15 = {UNET_K: (320, 768), "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": (1, 77),
        "first_stage_model.decoder.conv_in.weight": (4, 4, 1, 1)}
SD2 = {UNET_K: (320, 1024), "cond_stage_model.model.positional_embedding": (77, 8)}
SDXL = {"model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
        "model.diffusion_model.label_emb.0.0.weight": (8, 16),
        "conditioner.embedders.1.model.positional_embedding": (77, 8)}
INPAINT = {**SD15, "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}
FLUX = {"double_blocks.0.img_attn.qkv.weight": (4, 4)}
KOHYA_SD15 = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
              "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4)}
KOHYA_SDXL = {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
              "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 1280)}
PEFT_SDXL = {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048)}
VAE_KEYS = {"encoder.down.0.block.0.conv1.weight": (4, 4, 3, 3), "decoder.up.0.block.0.conv1.weight": (4, 4, 3, 3)}
EMBED_SD15 = {"emb_params": (2, 768)}
EMBED_SDXL = {"clip_l": (2, 768), "clip_g": (2, 1280)}
# ControlNets: A1111's control_v11 files (original layout, no prefix), the older control_model.* ones, diffusers'
CONTROL_SD15 = {"input_hint_block.0.weight": (16, 3, 3, 3), "zero_convs.0.0.weight": (320, 320, 1, 1),
                "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768)}
CONTROL_SD15_PREFIXED = {f"control_model.{k}": v for k, v in CONTROL_SD15.items()}
CONTROL_SD2 = {**CONTROL_SD15, "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)}
CONTROL_SDXL = {"controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3), "add_embedding.linear_1.weight": (8, 16),
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048)}
CONTROL_DIFFUSERS_SD15 = {"controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
                          "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 768)}


@pytest.mark.parametrize("table, expected", [
    (SD15, (CHECKPOINT, "sd15", False)), (SD2, (CHECKPOINT, "sd2", False)), (SDXL, (CHECKPOINT, "sdxl", False)),
    (INPAINT, (CHECKPOINT, "sd15", True)), (FLUX, (CHECKPOINT, "flux", False)),
    (KOHYA_SD15, (LORA, "sd15", False)), (KOHYA_SDXL, (LORA, "sdxl", False)), (PEFT_SDXL, (LORA, "sdxl", False)),
    (VAE_KEYS, (VAE, None, False)), (EMBED_SD15, (EMBEDDING, "sd15", False)),
    (EMBED_SDXL, (EMBEDDING, "sdxl", False)), (CONTROL_SD15, (CONTROLNET, "sd15", False)),
    (CONTROL_SD15_PREFIXED, (CONTROLNET, "sd15", False)), (CONTROL_SD2, (CONTROLNET, "sd2", False)),
    (CONTROL_SDXL, (CONTROLNET, "sdxl", False)), (CONTROL_DIFFUSERS_SD15, (CONTROLNET, "sd15", False)),
])
def test_kind_and_family_from_the_header_alone(tmp_path, table, expected):
    path = write(tmp_path / "m.safetensors", table)
    assert classify(read_header(path)) == expected


def test_bad_files_get_a_sentence(tmp_path):
    good = write(tmp_path / "good.safetensors", SD15)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-1000])
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my favourite prompts, not a model\n" * 20)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert "truncated" in inspect(truncated).problem and "again" in inspect(truncated).problem
    assert "not a safetensors file" in inspect(text).problem
    assert "not a safetensors file" in inspect(empty).problem
    assert inspect(good).problem is None


def test_a1111_and_comfyui_layouts_are_found_with_their_kinds(tmp_path):
    a1111, comfy = tmp_path / "stable-diffusion-webui", tmp_path / "ComfyUI"
    write(a1111 / "models/Stable-diffusion/dreamMix_v7.safetensors", SD15)
    write(a1111 / "models/Stable-diffusion/sub/juggernautXL_v9.safetensors", SDXL)
    write(a1111 / "models/Lora/detail.safetensors", KOHYA_SD15)
    write(a1111 / "models/VAE/vae-ft-mse.safetensors", VAE_KEYS)
    write(a1111 / "embeddings/badhands.safetensors", EMBED_SD15)
    (a1111 / "models/Stable-diffusion/old.ckpt").write_bytes(b"pickle")
    write(comfy / "models/checkpoints/flux1-schnell.safetensors", FLUX)
    write(comfy / "models/loras/xl_style.safetensors", KOHYA_SDXL)
    (comfy / "models/loras/readme.txt").write_text("not a model")
    folders = ModelFolders([a1111, comfy, tmp_path / "missing-folder", None])
    found = {f.path.name: f for f in folders.scan()}
    assert set(found) == {"dreamMix_v7.safetensors", "juggernautXL_v9.safetensors", "detail.safetensors",
                          "vae-ft-mse.safetensors", "badhands.safetensors", "old.ckpt", "flux1-schnell.safetensors",
                          "xl_style.safetensors"}
    assert [(f.name, f.family) for f in folders.files(CHECKPOINT)] == [
        ("dreamMix_v7", "sd15"), ("juggernautXL_v9", "sdxl"), ("flux1-schnell", "flux")]
    assert [f.name for f in folders.files(LORA)] == ["detail", "xl_style"]
    assert "pickle" in found["old.ckpt"].problem and found["old.ckpt"].kind == CHECKPOINT
    assert folders.find("dreamMix_v7", CHECKPOINT) is folders.find("DREAMMIX_V7.safetensors", CHECKPOINT)
    assert folders.find("old", CHECKPOINT) is None  # a bad file is never offered


def test_upscalers_are_found_in_their_folders_and_only_there_a_pth_is_accepted(tmp_path):
    a1111, comfy = tmp_path / "stable-diffusion-webui", tmp_path / "ComfyUI"
    compact = {"body.0.weight": (8, 3, 3, 3), "body.1.weight": (8,), "body.2.weight": (48, 8, 3, 3)}
    write(a1111 / "models/ESRGAN/4x_tiny.safetensors", compact)
    (a1111 / "models/RealESRGAN").mkdir(parents=True)
    (a1111 / "models/RealESRGAN/RealESRGAN_x4plus.pth").write_bytes(b"PK pickled tensors")
    write(comfy / "models/upscale_models/sub/2x_other.safetensors", compact)
    (comfy / "models/upscale_models/old.ckpt").write_bytes(b"pickle")
    (comfy / "models/checkpoints").mkdir(parents=True)
    (comfy / "models/checkpoints/4x_misplaced.pth").write_bytes(b"pickle")
    write(tmp_path / "loose/4x_loose.safetensors", compact)
    folders = ModelFolders([a1111, comfy, tmp_path / "loose"])
    found = {f.path.name: f for f in folders.scan()}
    assert [f.name for f in folders.files(UPSCALER)] == ["4x_tiny", "RealESRGAN_x4plus", "2x_other"]
    assert "pickle" in found["old.ckpt"].problem and "pickle" in found["4x_misplaced.pth"].problem
    assert "upscale_models/" in found["4x_loose.safetensors"].problem  # says where an upscaler goes
    assert folders.find("realesrgan_x4plus", UPSCALER).path.suffix == ".pth"


def test_a_rescan_sees_new_changed_and_removed_files(tmp_path):
    folders = ModelFolders([tmp_path])
    first = write(tmp_path / "checkpoints/a.safetensors", SD15)
    assert [f.name for f in folders.scan()] == ["a"]
    write(tmp_path / "checkpoints/b.safetensors", SDXL)
    first.write_bytes(first.read_bytes()[:-10])  # damaged since
    os.utime(first, (1, 1))
    found = {f.name: f for f in folders.scan()}
    assert set(found) == {"a", "b"} and "truncated" in found["a"].problem and found["b"].family == "sdxl"
    (tmp_path / "checkpoints/b.safetensors").unlink()
    assert [f.name for f in folders.scan()] == ["a"]


def test_controlnets_in_a1111_comfyui_and_diffusers_layouts(tmp_path):
    a1111, comfy = tmp_path / "stable-diffusion-webui", tmp_path / "ComfyUI"
    write(a1111 / "models/ControlNet/control_v11p_sd15_canny.safetensors", CONTROL_SD15)
    write(comfy / "models/controlnet/sdxl/diffusers_xl_canny_mid.safetensors", CONTROL_SDXL)
    folder = write(tmp_path / "mine/canny-sd15/diffusion_pytorch_model.safetensors", CONTROL_DIFFUSERS_SD15).parent
    (folder / "config.json").write_text('{"_class_name": "ControlNetModel"}')
    write(tmp_path / "mine/unknown/diffusion_pytorch_model.safetensors", CONTROL_DIFFUSERS_SD15)  # no config.json
    folders = ModelFolders([a1111, comfy, tmp_path / "mine"])
    folders.scan()
    assert [(f.name, f.family) for f in folders.files(CONTROLNET)] == [
        ("control_v11p_sd15_canny", "sd15"), ("diffusers_xl_canny_mid", "sdxl"), ("canny-sd15", "sd15"),
        ("diffusion_pytorch_model", "sd15")]
    assert folders.find("canny-sd15", CONTROLNET).in_diffusers_folder
    assert not folders.files(CHECKPOINT)  # a ControlNet is never offered as a model
