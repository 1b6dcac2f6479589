"""Latent -> RGB step previews by a linear projection (per-family factors in presets/latent_formats.yaml)."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import yaml
from PIL import Image

from .config import PRESETS_DIR

if TYPE_CHECKING:  # torch is imported where latents exist, so engine imports stay light
    import torch


@lru_cache(maxsize=None)
def latent_format(family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(factors [C, 3], bias [3]) for a model family; unknown families use SD 1.5's."""
    import torch

    table = yaml.safe_load((PRESETS_DIR / "latent_formats.yaml").read_text())
    entry = table.get(family) or table["sd15"]
    factors = torch.tensor(entry["factors"], dtype=torch.float32)
    bias = torch.tensor(entry.get("bias", [0.0, 0.0, 0.0]), dtype=torch.float32)
    return factors, bias


def unpack_flux_latents(latents: torch.Tensor, height: int, width: int, vae_scale: int = 8) -> torch.Tensor:
    """Undo diffusers' FLUX 2x2 patch packing: [B, (h/2)(w/2), C*4] -> [B, C, h, w]."""
    b, _, packed_c = latents.shape
    h, w = 2 * (height // (vae_scale * 2)), 2 * (width // (vae_scale * 2))
    x = latents.view(b, h // 2, w // 2, packed_c // 4, 2, 2)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, packed_c // 4, h, w)


def latents_to_preview(latents: torch.Tensor, family: str) -> Image.Image:
    """Project the first latent of a batch [B, C, h, w] to a small RGB image (one pixel per latent)."""
    import torch

    factors, bias = latent_format(family)
    x = latents[0].detach().to("cpu", torch.float32)
    if x.shape[0] != factors.shape[0]:
        raise ValueError(f"{family} previews expect {factors.shape[0]} latent channels, got {x.shape[0]}.")
    rgb = torch.einsum("chw,cr->hwr", x, factors) + bias
    rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(np.ascontiguousarray(rgb.numpy()), mode="RGB")
