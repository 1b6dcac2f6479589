"""A ControlNet made for the tiny model: `ControlNetModel.from_unet(tiny UNet)`, its zero convolutions (the layers
a new ControlNet starts with at zero, so it changes nothing) given random values from a seed, so it does steer.

Saved three ways, as users have ControlNets: a diffusers folder (config.json + diffusion_pytorch_model.safetensors),
one file with diffusers' keys, and one file in the original (A1111 control_v11*) layout: `input_hint_block.*`,
`zero_convs.*`, `middle_block_out.*` and the UNet encoder's LDM names."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import save_file

from tests.support.ldm_checkpoint import UNET_RESNET, _rename, _unet_prefixes

ZERO_CONVS = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")


def tiny_controlnet(tiny_dir: Path, *, seed: int = 0, strength: float = 0.5) -> ControlNetModel:
    """The tiny model's ControlNet: its UNet's encoder copied, the rest random from `seed` (the zero convolutions
    N(0, strength²))."""
    unet = UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet")
    with torch.random.fork_rng():  # the layers not copied from the UNet are drawn from the global generator
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in controlnet.state_dict(keep_vars=True).items():
            if name.startswith(ZERO_CONVS):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * strength)
    return controlnet


def original_layout(controlnet: ControlNetModel) -> dict[str, torch.Tensor]:
    """The ControlNet's state dict under the original layout's names (what A1111's control_v11 files hold)."""
    prefixes = _unet_prefixes({**dict(controlnet.config), "up_block_types": ()})
    blocks = len(controlnet.controlnet_cond_embedding.blocks)
    special = {"controlnet_cond_embedding.conv_in.": "input_hint_block.0.",
               "controlnet_cond_embedding.conv_out.": f"input_hint_block.{2 * (blocks + 1)}.",
               "controlnet_mid_block.": "middle_block_out.0."}
    special.update({f"controlnet_cond_embedding.blocks.{i}.": f"input_hint_block.{2 * (i + 1)}." for i in range(blocks)})
    special.update({f"controlnet_down_blocks.{i}.": f"zero_convs.{i}.0."
                    for i in range(len(controlnet.controlnet_down_blocks))})
    out = {}
    for key, value in controlnet.state_dict().items():
        head = next((p for p in special if key.startswith(p)), None)
        name = special[head] + key[len(head):] if head else _rename(key, prefixes, UNET_RESNET)
        out[name] = value.detach().clone().contiguous()
    return out


def write_tiny_controlnet(root: Path, tiny_dir: Path, *, seed: int = 0) -> dict[str, Path]:
    """The tiny ControlNet under `root`/ControlNet/ three ways; {"folder", "diffusers_file", "original_file"}."""
    controlnet = tiny_controlnet(tiny_dir, seed=seed)
    folder = Path(root) / "ControlNet"
    folder.mkdir(parents=True, exist_ok=True)
    controlnet.save_pretrained(folder / "tinyCanny-diffusers", safe_serialization=True)
    weights = {k: v.detach().clone().contiguous() for k, v in controlnet.state_dict().items()}
    save_file(weights, str(folder / "tinyCanny-file.safetensors"))
    save_file(original_layout(controlnet), str(folder / "tinyCanny.safetensors"))
    return {"folder": folder / "tinyCanny-diffusers", "diffusers_file": folder / "tinyCanny-file.safetensors",
            "original_file": folder / "tinyCanny.safetensors"}
