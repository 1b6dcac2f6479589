"""TAESD decoder files as they are published (madebyollin/taesd's `taesd_decoder.pth` / `.safetensors`, the files
A1111 keeps in models/VAE-approx and ComfyUI in models/vae_approx), with random weights: TAESD's own Decoder
structure (an nn.Sequential whose first entry is a weightless clamp), written here as its project defines it, so
the app's loader is checked against the published layout rather than against itself."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class _Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def reference_decoder(latent_channels: int = 4, seed: int = 0) -> nn.Sequential:
    """TAESD's Decoder (output in [0, 1]) with random weights."""
    torch.manual_seed(seed)
    return nn.Sequential(
        _Clamp(), _conv(latent_channels, 64), nn.ReLU(),
        _Block(64, 64), _Block(64, 64), _Block(64, 64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False),
        _Block(64, 64), _Block(64, 64), _Block(64, 64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False),
        _Block(64, 64), _Block(64, 64), _Block(64, 64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False),
        _Block(64, 64), _conv(64, 3),
    ).eval()


def write_taesd_decoder(path: Path, seed: int = 0) -> nn.Sequential:
    """Save a random TAESD decoder at `path` (.safetensors, or .pth as torch.save writes it); returns it."""
    from safetensors.torch import save_file

    decoder = reference_decoder(seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.contiguous() for key, value in decoder.state_dict().items()}
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return decoder
