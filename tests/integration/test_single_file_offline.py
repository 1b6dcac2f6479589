"""A1111/ComfyUI single-file checkpoints (SD 1.5 full size, SDXL small) load offline with an empty HF cache.

Each load runs in a fresh interpreter whose environment says HF_HUB_OFFLINE=1 and points HF_HOME and
HF_HUB_CACHE at an empty folder before huggingface_hub is imported (its constants are read at import,
and this pytest process has long imported it). The child checks every weight against the file, draws
64x64 in 2 steps, and reports back as JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.clip_vocab import ensure_tokenizer_files
from engine.single_file import PRESETS_DIR, load_single_file
from tests.support.ldm_checkpoint import cached_checkpoint, ddpm_schedule, ldm_key_names, write_small_sdxl_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAT = "a photo of a cat"
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]
# SHA-256 of openai/clip-vit-large-patch14's vocab.json and merges.txt as published on the Hugging Face Hub.
CLIP_L_SHA256 = {"vocab.json": "3f0c4f7d2086b61b38487075278ea9ed04edb53a03cbb045b86c27190fa8fb69",
                 "merges.txt": "9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a"}


def offline_run(pipeline: str, checkpoint: str, kind: str, config_root: str, cache_dir: str) -> dict:
    """In the child: load `checkpoint` as diffusers.`pipeline`, compare its weights with the file,
    generate once; returns what the test asserts on."""
    import diffusers
    import torch
    from huggingface_hub import constants
    from safetensors import safe_open

    from tests.support.ldm_checkpoint import component_configs, component_to_ldm

    family = kind.split("-")[0]
    started = time.perf_counter()
    pipe = load_single_file(getattr(diffusers, pipeline), checkpoint, family, dtype=torch.float32,
                            config_root=Path(config_root) if config_root else None, cache_dir=Path(cache_dir))
    load_s = time.perf_counter() - started

    expected: dict[str, torch.Tensor] = {}
    for name, config in component_configs(family, small=kind.endswith("-small")).items():
        expected.update(component_to_ldm(name, family, getattr(pipe, name).state_dict(), config))
    with safe_open(checkpoint, "pt") as file:
        in_file = set(file.keys())
        mismatched = []
        for key in sorted(expected.keys() & in_file):
            stored = file.get_tensor(key)
            if not torch.equal(expected[key].to(stored.dtype), stored):
                mismatched.append(key)

    started = time.perf_counter()
    image = pipe(CAT, num_inference_steps=2, height=64, width=64, generator=torch.Generator().manual_seed(0)).images[0]
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if family == "sdxl" else [])
    return {
        "hub_cache": constants.HF_HUB_CACHE, "offline": constants.HF_HUB_OFFLINE,
        "not_loaded": sorted(expected.keys() - in_file), "not_in_model": sorted(in_file - expected.keys()),
        "mismatched": mismatched[:5],
        "image": [type(image).__module__ + "." + type(image).__name__, *image.size],
        "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
        "unet": {k: pipe.unet.config[k] for k in ("cross_attention_dim", "block_out_channels")},
        "cat_ids": [t(CAT).input_ids for t in tokenizers], "pads": [t.pad_token for t in tokenizers],
        "load_s": round(load_s, 1), "generate_s": round(time.perf_counter() - started, 1),
    }


def run_offline(tmp_path: Path, pipeline: str, checkpoint: Path, kind: str, config_root: Path | None = None) -> dict:
    """offline_run in a fresh interpreter, offline, with an empty HF cache that must stay empty."""
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
           "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    code = ("import json, sys; from tests.integration.test_single_file_offline import offline_run; "
            "print(json.dumps(offline_run(*sys.argv[1:])))")
    args = [pipeline, str(checkpoint), kind, str(config_root or ""), str(tmp_path / "pipelines")]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["offline"] is True and report["hub_cache"] == str(hf_home / "hub")
    assert not any(hf_home.rglob("*")), "the Hugging Face cache was written to"
    assert report["not_loaded"] == [] and report["mismatched"] == []
    assert report["image"] == ["PIL.Image.Image", 64, 64]
    return report


def test_full_size_sd15_checkpoint_loads_and_generates_offline(tmp_path):
    started = time.perf_counter()
    checkpoint = tmp_path / "dreamMix_v7.safetensors"
    checkpoint.symlink_to(cached_checkpoint("sd15"))
    build_s = time.perf_counter() - started
    report = run_offline(tmp_path, "StableDiffusionPipeline", checkpoint, "sd15")
    print(f"SD 1.5: checkpoint ready in {build_s:.1f}s, loaded in {report['load_s']}s, "
          f"2 steps at 64x64 in {report['generate_s']}s")
    assert report["unet"] == {"cross_attention_dim": 768, "block_out_channels": [320, 640, 1280, 1280]}
    assert 855e6 < report["unet_params"] < 865e6
    assert set(report["not_in_model"]) == set(ddpm_schedule())  # the file's DDPM buffers, unused by diffusers
    assert report["cat_ids"] == [CAT_IDS] and report["pads"] == ["<|endoftext|>"]


def test_small_sdxl_checkpoint_loads_and_generates_offline(tmp_path):
    from safetensors import safe_open

    checkpoint = cached_checkpoint("sdxl-small")
    with safe_open(str(checkpoint), "pt") as file:
        assert set(file.keys()) == ldm_key_names("sdxl")  # every tensor name of a full SDXL base, no other
    config_root = write_small_sdxl_config(tmp_path / "configs")
    report = run_offline(tmp_path, "StableDiffusionXLPipeline", checkpoint, "sdxl-small", config_root)
    assert report["unet"] == {"cross_attention_dim": 192, "block_out_channels": [32, 64, 128]}
    assert report["not_in_model"] == []
    assert report["cat_ids"] == [CAT_IDS, CAT_IDS] and report["pads"] == ["<|endoftext|>", "!"]


def test_clip_tokenizer_files_match_openai_vocabulary(tmp_path):
    from transformers import CLIPTokenizer

    folder = tmp_path / "tokenizer"
    shutil.copytree(PRESETS_DIR / "sd15" / "tokenizer", folder)
    ensure_tokenizer_files(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in CLIP_L_SHA256} == CLIP_L_SHA256
    assert CLIPTokenizer.from_pretrained(folder, local_files_only=True)(CAT).input_ids == CAT_IDS

    written = (folder / "vocab.json").stat().st_mtime_ns
    ensure_tokenizer_files(folder)
    assert (folder / "vocab.json").stat().st_mtime_ns == written


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sd15, sdxl"):
        load_single_file(object, tmp_path / "model.safetensors", "sd3", dtype=None)
