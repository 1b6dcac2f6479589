"""LoRAs made for the tiny model, in kohya's format (the one A1111 and Civitai files use for SD 1.5):
`lora_unet_<module path with _>.lora_down.weight` / `.lora_up.weight` / `.alpha` for every attention
projection of the UNet (and, given the text encoder, `lora_te_text_model_...` for its attention projections),
random values from a seed."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


TEXT_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def write_tiny_lora(path: Path, unet: torch.nn.Module, *, rank: int = 4, seed: int = 0, strength: float = 0.5,
                    text_encoder: torch.nn.Module | None = None) -> Path:
    """A kohya-format LoRA for `unet` (the tiny model's UNet2DConditionModel), and its `text_encoder` when given,
    written to `path`."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}

    def add(key: str, module: torch.nn.Linear) -> None:
        tensors[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=generator) * strength
        tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=generator) * strength
        tensors[f"{key}.alpha"] = torch.tensor(float(rank))

    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(PROJECTIONS) and ".attn" in name:
            add("lora_unet_" + name.replace(".", "_"), module)
    for name, module in (text_encoder.named_modules() if text_encoder is not None else ()):
        if isinstance(module, torch.nn.Linear) and name.endswith(TEXT_PROJECTIONS):
            add("lora_te_text_model_" + name.removeprefix("text_model.").replace(".", "_"), module)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
    return path
