"""TAESD step previews: the tiny decoder A1111 (models/VAE-approx) and ComfyUI (models/vae_approx) use for sharp live
previews, loaded into diffusers' AutoencoderTiny decoder and run on each step's latents at full size.

The published files (`taesd_decoder.pth` / `.safetensors` for SD 1.x and 2.x, `taesdxl_decoder` for SDXL) hold the
decoder as TAESD's own `nn.Sequential`, whose first entry is its clamp (no weights): entry N there is entry N - 1 of
diffusers' `DecoderTiny.layers`, which clamps in its forward instead. A `.pth` is opened with
`torch.load(weights_only=True)`, which refuses anything but tensors, so loading it cannot run code.
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Callable

from ..errors import first_line
from ..model_files import UPSCALER_PICKLE, ModelFile

logger = logging.getLogger(__name__)

Decode = Callable[[Any], Any]  # latents [B, C, h, w] -> RGB bytes [H, W, 3] on the latents' device
MAX_PREVIEW_SIDE = 512  # a decoded preview is shrunk to this (ComfyUI's default preview size): it is only a preview
_ENTRY = re.compile(r"^(\d+)\.(.*)$")


def taesd_state_dict(path: Path) -> dict[str, Any]:
    """A TAESD decoder file's tensors under diffusers' names (`layers.N...`); ValueError with a sentence when the
    file cannot be read or holds something else."""
    import torch
    from safetensors.torch import load_file

    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True) if path.suffix.lower() == UPSCALER_PICKLE \
            else load_file(str(path))
    except Exception as err:  # a damaged file, or a pickle holding more than tensors
        raise ValueError(f"The TAESD decoder {path.name} could not be read ({first_line(err)}).") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"The TAESD decoder {path.name} holds no weights.")
    state: dict[str, Any] = {}
    for key, tensor in raw.items():
        found = _ENTRY.match(str(key))
        if found is None or int(found[1]) < 1 or not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{path.name} is not a TAESD decoder (it holds {key!r}).")
        state[f"layers.{int(found[1]) - 1}.{found[2]}"] = tensor
    return state


def load_taesd(path: Path, device: str, dtype: Any) -> Decode:
    """The decoder of `path` on `device`, as a function from latents to preview bytes; ValueError with a sentence."""
    import torch
    from diffusers import AutoencoderTiny

    state = taesd_state_dict(path)
    channels = next((tensor.shape[1] for key, tensor in state.items() if key == "layers.0.weight"), 4)
    decoder = AutoencoderTiny(latent_channels=channels).decoder
    try:
        decoder.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path.name} is not a TAESD decoder of the shape this app knows ({first_line(err)}).") \
            from None
    decoder = decoder.to(device=device, dtype=dtype).eval().requires_grad_(False)

    def decode(latents: Any) -> Any:
        with torch.inference_mode():
            rgb = decoder(latents[:1].to(device=device, dtype=dtype)).float()  # [1, 3, H, W] in [-1, 1]
            scale = MAX_PREVIEW_SIDE / max(rgb.shape[-2:])
            if scale < 1:
                rgb = torch.nn.functional.interpolate(rgb, scale_factor=scale, mode="area")
        return ((rgb[0] + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return decode


class PreviewDecoders:
    """One loaded TAESD decoder per device (the file it came from and its state); a file that fails is said once in
    the log and previews fall back to the linear projection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[tuple[str, int, float], Decode | None]] = {}

    def decoder(self, file: ModelFile | None, device: str, dtype: Any) -> Decode | None:
        """The decode function of `file` on `device` (None: no file, or one that cannot be used)."""
        if file is None:
            return None
        with self._lock:
            known = self._loaded.get(device)
            if known is not None and known[0] == file.stamp:
                return known[1]
            try:
                decode: Decode | None = load_taesd(file.path, device, dtype)
                logger.info("Step previews on %s decode with TAESD (%s).", device, file.path.name)
            except ValueError as err:
                logger.warning("%s Step previews use the linear projection.", err)
                decode = None
            self._loaded[device] = (file.stamp, decode)
            return decode
