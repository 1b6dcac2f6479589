"""Step previews: latents -> RGB by a linear projection (per-family factors in presets/latent_formats.yaml), or by a
TAESD decoder when one is given (engine/backends/preview_decoders.py)."""
from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import yaml
from PIL import Image

from .config import PRESETS_DIR
from .errors import first_line

logger = logging.getLogger(__name__)

# A decoder's previews (TAESD) come at most this often, plus the last step's: on an H100 a TAESD preview of a
# 1024 px SDXL step costs 7 ms of GPU time, 9-17 % of a step; twice a second it is about 1.4 % of the image.
# The projection costs 0.2 ms and previews every step.
DECODED_PREVIEW_PERIOD_S = 0.5
# A GPU preview's copy is waited for only when more than this many are in flight: the CPU may queue that many steps
# ahead of the GPU, which absorbs its jitter where it queues a step about as fast as the GPU runs one (a compiled
# SDXL step on a slow CPU: previews cost 0.09-0.35 s of a 1.5 s image with one step of lag, BENCHMARKS.md run 6).
PREVIEW_LAG_STEPS = 2

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


@lru_cache(maxsize=None)
def _latent_format_on(family: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`latent_format` on a device, copied there once: a copy from ordinary host memory to a GPU waits for all
    the GPU's queued work, so a copy per step would stall every step."""
    factors, bias = latent_format(family)
    return factors.to(device), bias.to(device)


def _projected(latents: torch.Tensor, family: str) -> torch.Tensor:
    """The first latent of a batch [B, C, h, w] as RGB bytes [h, w, 3], on the latents' own device."""
    import torch

    x = latents[0].detach().to(torch.float32)
    factors, bias = _latent_format_on(family, x.device)
    if x.shape[0] != factors.shape[0]:
        raise ValueError(f"{family} previews expect {factors.shape[0]} latent channels, got {x.shape[0]}.")
    rgb = torch.einsum("chw,cr->hwr", x, factors) + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


def _image(rgb: torch.Tensor) -> Image.Image:
    return Image.fromarray(np.array(rgb.numpy(), copy=True), mode="RGB")  # a copy: host buffers are reused


def latents_to_preview(latents: torch.Tensor, family: str) -> Image.Image:
    """Project the first latent of a batch [B, C, h, w] to a small RGB image (one pixel per latent)."""
    return _image(_projected(latents, family).cpu())


class StepPreviews:
    """Step previews that never make a GPU wait. On a CUDA device each step's latents are projected there and
    copied to pinned host memory without blocking; a copy is read once it has finished (checked without waiting),
    and waited for only when more than PREVIEW_LAG_STEPS are still in flight, or at `flush` (after the last step).
    So the CPU may queue that many steps ahead of the GPU, and a preview arrives a step or two late. Elsewhere
    (`deferred` False: the CPU, where nothing runs ahead) each preview is ready at once. With the projection every
    step gets its preview; with a decoder, a step less than `period_s` after the last decoded one gets none (its
    image is None), the last step always one. In order."""

    def __init__(self, family: str, deferred: bool | None = None, decode: Any = None,
                 period_s: float = DECODED_PREVIEW_PERIOD_S, clock: Callable[[], float] = time.monotonic,
                 make_event: Callable[[], Any] | None = None) -> None:
        self.family = family
        self.deferred = deferred
        self.decode = decode  # latents -> RGB bytes on their device (a TAESD decoder); None: the linear projection
        self.period_s, self._clock = period_s, clock  # a decoder's previews: at most one per period
        self._make_event = make_event  # marks a copy's end on the device's stream; None: torch.cuda.Event on GPUs
        self._decoded_at: float | None = None
        self._pending: list[tuple[int, torch.Tensor | None, Any]] = []  # (step, host copy or none, event)
        self._buffers: list[torch.Tensor] = []  # pinned host buffers, used in turn (allocating one syncs)
        self._turn = 0

    def add(self, step: int, latents: torch.Tensor, last: bool = False) -> list[tuple[int, Image.Image | None]]:
        """Start the preview of `step` (with a decoder: unless one started less than a period ago and this is not
        the `last` step: then (step, None)); return (step, image) for every preview that is ready now."""
        import torch

        deferred = latents.is_cuda if self.deferred is None else self.deferred
        if self.decode is not None:
            now = self._clock()
            if not last and self._decoded_at is not None and now - self._decoded_at < self.period_s:
                self._pending.append((step, None, None))  # no preview for this step, after those in flight
                return self._finished()
            self._decoded_at = now
        rgb = self._decoded(latents) if self.decode is not None else _projected(latents, self.family)
        if not deferred:
            return [*self.flush(), (step, _image(rgb.cpu()))]
        if len(self._buffers) != PREVIEW_LAG_STEPS + 1 or self._buffers[0].shape != rgb.shape:
            # one more buffer than copies in flight: the one reused next has always been read
            self._buffers = [torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=rgb.is_cuda)
                             for _ in range(PREVIEW_LAG_STEPS + 1)]
        host = self._buffers[self._turn]
        self._turn = (self._turn + 1) % len(self._buffers)
        host.copy_(rgb, non_blocking=True)
        make_event = self._make_event or (torch.cuda.Event if rgb.is_cuda else None)
        done = make_event() if make_event is not None else None
        if done is not None and rgb.is_cuda:  # on the stream the copy went to: the latents' GPU, maybe not the first
            done.record(torch.cuda.current_stream(rgb.device))
        elif done is not None:
            done.record()
        self._pending.append((step, host, done))
        return self._finished()

    def _finished(self, wait: bool = False) -> list[tuple[int, Image.Image | None]]:
        """The previews whose copies have finished, in order, waiting for those beyond PREVIEW_LAG_STEPS (`wait`:
        for every one)."""
        ready = []
        while self._pending:
            step, host, done = self._pending[0]
            if done is not None and not wait and len(self._pending) <= PREVIEW_LAG_STEPS and not done.query():
                break
            if done is not None:
                done.synchronize()
            ready.append((step, None if host is None else _image(host)))
            self._pending.pop(0)
        return ready

    def _decoded(self, latents: torch.Tensor) -> torch.Tensor:
        """The decoder's preview; should it fail (out of memory on a large hires pass, latents it does not fit),
        the projection from then on: a preview never costs the image."""
        try:
            return self.decode(latents)
        except Exception as err:  # noqa: BLE001 (any failure of an optional preview)
            logger.warning("The preview decoder failed (%s); step previews use the linear projection.", first_line(err))
            self.decode = None
            return _projected(latents, self.family)

    def flush(self) -> list[tuple[int, Image.Image | None]]:
        """Every started preview, waiting for its copy (done by then, or at the end of a run)."""
        return self._finished(wait=True)
