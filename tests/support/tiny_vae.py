"""A VAE file for the tiny model in the original (A1111) single-file layout: the tiny model's own VAE with
its decoder's output changed, so an image decoded with it differs from the checkpoint's own."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from tests.support.ldm_checkpoint import vae_to_ldm


def write_tiny_vae(path: Path, tiny_dir: Path, *, shift: float = 0.5) -> Path:
    """The tiny model's VAE, its last decoder layer's bias shifted by `shift`, as an LDM-layout file."""
    vae = AutoencoderKL.from_pretrained(tiny_dir, subfolder="vae")
    weights = {k: v.clone() for k, v in vae.state_dict().items()}
    weights["decoder.conv_out.bias"] += shift
    ldm = {k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_ldm(weights, dict(vae.config)).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ldm, str(path))
    return path
