"""Tiny model upscalers with random weights, in the key layouts the real ones are published in, so spandrel
recognises them from their tensors alone: Real-ESRGAN's compact SRVGGNetCompact (`body.N`, the input enlarged
and a learned residual added, like realesr-general-x4v3) and ESRGAN's RRDBNet in BasicSR's layout
(`conv_first`, `body.N.rdbM.convK`, `conv_up1`..., like RealESRGAN_x4plus.pth)."""
from __future__ import annotations

from pathlib import Path

import torch


def _weights(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.randn(*shape, generator=generator) * 0.05


def compact_state_dict(scale: int = 4, features: int = 8, convs: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """SRVGGNetCompact: conv, PReLU, (conv, PReLU) x `convs`, a conv to 3 x scale^2 channels (pixel shuffle)."""
    t = _weights(seed)
    state = {"body.0.weight": t(features, 3, 3, 3), "body.0.bias": t(features), "body.1.weight": torch.full((features,), 0.25)}
    index = 2
    for _ in range(convs):
        state.update({f"body.{index}.weight": t(features, features, 3, 3), f"body.{index}.bias": t(features),
                      f"body.{index + 1}.weight": torch.full((features,), 0.25)})
        index += 2
    state.update({f"body.{index}.weight": t(3 * scale * scale, features, 3, 3), f"body.{index}.bias": t(3 * scale * scale)})
    return state


def rrdb_state_dict(features: int = 8, blocks: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """RRDBNet x4 in BasicSR's layout (growth 32, as spandrel expects)."""
    t, growth = _weights(seed), 32
    state = {"conv_first.weight": t(features, 3, 3, 3), "conv_first.bias": t(features)}
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                inputs, outputs = features + (conv - 1) * growth, growth if conv < 5 else features
                state[f"body.{block}.rdb{rdb}.conv{conv}.weight"] = t(outputs, inputs, 3, 3)
                state[f"body.{block}.rdb{rdb}.conv{conv}.bias"] = t(outputs)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        state.update({f"{name}.weight": t(features, features, 3, 3), f"{name}.bias": t(features)})
    state.update({"conv_last.weight": t(3, features, 3, 3), "conv_last.bias": t(3)})
    return state


def write_compact(path: Path, scale: int = 4, seed: int = 0) -> Path:
    """A compact upscaler as .safetensors (or .pth, by the path's suffix)."""
    return _write(path, compact_state_dict(scale=scale, seed=seed))


def write_rrdb(path: Path, seed: int = 0) -> Path:
    """An ESRGAN x4 (RRDBNet) as .pth (or .safetensors, by the path's suffix)."""
    return _write(path, rrdb_state_dict(seed=seed))


def _write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path
