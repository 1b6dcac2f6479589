"""Model upscalers (ESRGAN family) on this machine: a file of an upscaler folder loaded with spandrel (weights
only), one model kept loaded at a time, run over the image in pieces (engine/upscale.py's tiling rule) so its
memory stays bounded whatever the image's size, and resized (Lanczos) to the exact size asked for on the way out.

Memory: the model sees one piece of at most TILE x TILE input pixels at a time; the pieces of one row are blended
into a band as wide as the image at the model's scale, finished rows go straight into the requested size, so
neither the model's work nor the model-scale image is ever held whole (a 4x model asked for 2x never makes the
4x picture).
"""
from __future__ import annotations

import enum
import logging
import math
import pickle
import re
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import GenerationCancelled, InvalidRequest, first_line
from ..model_files import ModelFile
from ..upscale import TILE, TILE_OVERLAP, tile_starts

logger = logging.getLogger(__name__)

MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # image channels -> PIL mode
LANCZOS_SUPPORT = 3.0  # PIL's Lanczos kernel reaches 3 source pixels each side (times the shrink factor)


def import_spandrel() -> Any:
    """spandrel, imported without torchvision. Its registry imports two architectures that are not upscalers
    (LaMa inpainting, RestoreFormer faces) that use torchvision at run time; PyPI's torchvision does not import
    beside the pinned torch, so while spandrel is imported those names are stand-ins that raise if ever called,
    and they leave sys.modules right after (nothing else sees a torchvision that is not there)."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        import torchvision  # noqa: F401  (a real one, where it works)
    except Exception:  # absent, or one that fails beside this torch
        stand_ins = _torchvision_stand_ins()
        sys.modules.update(stand_ins)
        try:
            import spandrel
        finally:
            for name in stand_ins:
                sys.modules.pop(name, None)
        return spandrel
    import spandrel
    return spandrel


def _torchvision_stand_ins() -> dict[str, types.ModuleType]:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this model needs torchvision, which is not installed")

    root, transforms, functional = (types.ModuleType(name) for name in
                                    ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"))
    functional.InterpolationMode = enum.Enum("InterpolationMode", {"NEAREST": "nearest", "BILINEAR": "bilinear"})
    functional.rotate = functional.normalize = unavailable
    root.transforms, transforms.functional = transforms, functional
    return {m.__name__: m for m in (root, transforms, functional)}


def read_weights(path: Path) -> dict[str, Any]:
    """The tensors of an upscaler file: safetensors as they are, a .pth with torch.load(weights_only=True), which
    rebuilds tensors and plain containers and refuses any other object its pickle names."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(str(path), map_location="cpu", weights_only=True)


class UpscaleModels:
    """The model upscaler loaded now (one at a time), and the files that failed to load (until they change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[str, int, float], str, Any] | None = None  # (file stamp, device, descriptor)
        self._failed: dict[tuple[str, int, float], str] = {}
        self.loads = 0  # files loaded from disk (reuse of the loaded one is observable)
        self.tiles = 0  # pieces run through a model, all upscales together
        self.largest_piece = 0  # the longest side of any piece a model was given (at most TILE)

    def problem(self, file: ModelFile) -> str | None:
        """The sentence of an earlier failed load of `file` (None when it has not failed since it last changed)."""
        return self._failed.get(file.stamp)

    def model(self, file: ModelFile, device: str) -> Any:
        """`file` as a spandrel ImageModelDescriptor on `device`, loaded once and kept; another file replaces it.
        InvalidRequest with a sentence (remembered until the file changes) when it is not an image upscaler."""
        with self._lock:
            if self._loaded is not None and self._loaded[:2] == (file.stamp, device):
                return self._loaded[2]
            if file.stamp in self._failed:
                raise InvalidRequest(self._failed[file.stamp])
            self._loaded = None  # free the old one before loading the next
            try:
                descriptor = self._load(file, device)
            except InvalidRequest as err:
                self._failed[file.stamp] = str(err)
                raise
            self._loaded = (file.stamp, device, descriptor)
            self.loads += 1
            return descriptor

    @staticmethod
    def _load(file: ModelFile, device: str) -> Any:
        spandrel = import_spandrel()
        name = file.path.name
        started = time.perf_counter()
        try:
            state = spandrel.canonicalize_state_dict(read_weights(file.path))
            descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(state)
        except pickle.UnpicklingError as err:
            named = re.search(r"GLOBAL ([\w.]+)", str(err))
            raise InvalidRequest(f"{name} holds more than model weights (its pickle names "
                                 f"{named.group(1) if named else 'other objects'}), so it is not loaded: only "
                                 "tensors are read from a .pth.") from err
        except spandrel.UnsupportedModelError as err:
            raise InvalidRequest(f"{name} is not an upscaler model this app knows (spandrel recognises ESRGAN, "
                                 "Real-ESRGAN, SwinIR, HAT, DAT and more).") from err
        except Exception as err:  # a truncated or damaged file, a table of the wrong shapes
            raise InvalidRequest(f"{name} could not be loaded as an upscaler ({first_line(err)}).") from err
        if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels not in MODES \
                or descriptor.output_channels not in MODES:
            raise InvalidRequest(f"{name} is a {descriptor.architecture.name} model that does not turn one image "
                                 "into a larger one, so it cannot upscale.")
        descriptor.eval().to(device)
        logger.info("Loaded upscaler %s (%s, %dx) on %s in %.2fs", name, descriptor.architecture.name,
                    descriptor.scale, device, time.perf_counter() - started)
        return descriptor

    def upscale(self, file: ModelFile, image: Image.Image, width: int, height: int, device: str = "cpu",
                stopped: Callable[[], bool] = lambda: False, tile: int = TILE,
                overlap: int = TILE_OVERLAP) -> Image.Image:
        """`image` enlarged by `file`'s model, resized (Lanczos) to width x height. A model that enlarges less than
        asked runs again on its own output while one more run still stays within the size asked for (A1111 does
        the same); GenerationCancelled when `stopped()` turns true between two pieces."""
        descriptor = self.model(file, device)
        scale = max(1, int(descriptor.scale))
        started, pieces = time.perf_counter(), self.tiles
        current = image.convert(MODES[descriptor.input_channels])
        while scale > 1 and current.width * scale * scale <= width and current.height * scale * scale <= height:
            current = self._run(descriptor, current, current.width * scale, current.height * scale, device,
                                stopped, tile, overlap)
        larger = self._run(descriptor, current, width, height, device, stopped, tile, overlap)
        logger.info("Upscaled %dx%d to %dx%d with %s in %d pieces, %.2fs", image.width, image.height, width, height,
                    file.path.name, self.tiles - pieces, time.perf_counter() - started)
        return larger.convert("RGB")

    def _run(self, descriptor: Any, image: Image.Image, width: int, height: int, device: str,
             stopped: Callable[[], bool], tile: int, overlap: int) -> Image.Image:
        import torch

        dtype = torch.float16 if device.startswith("cuda") and descriptor.supports_half else torch.float32
        descriptor.to(dtype)

        def run(piece: np.ndarray) -> np.ndarray:
            if stopped():
                raise GenerationCancelled("Upscale stopped.")
            tensor = torch.from_numpy(piece).permute(2, 0, 1)[None].to(device, dtype)
            self.tiles += 1
            self.largest_piece = max(self.largest_piece, *piece.shape[:2])
            return descriptor(tensor)[0].float().permute(1, 2, 0).cpu().numpy()

        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        while True:
            try:
                return upscale_in_tiles(run, pixels, int(descriptor.scale), width, height, tile, overlap)
            except torch.OutOfMemoryError:  # smaller pieces, as ComfyUI does, down to a quarter of the usual
                if tile <= TILE // 4:
                    raise
                tile //= 2
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                logger.warning("Out of memory upscaling with %d px pieces; trying %d px", tile * 2, tile)


def upscale_in_tiles(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, scale: int, width: int, height: int,
                     tile: int = TILE, overlap: int = TILE_OVERLAP) -> Image.Image:
    """`pixels` (H x W x C floats in 0..1) through `run` (a piece in, the piece `scale` times larger out) piece by
    piece, as a width x height image. The pieces of a row are blended across their overlap into a band; the
    bands likewise; each finished band of rows is resized (Lanczos) into the output at once, reading the rows
    around it that the filter reaches, so the result is the one a resize of the whole model-scale image gives."""
    rows, cols, _ = pixels.shape
    full_w, full_h = cols * scale, rows * scale  # the model's own output size (never held whole)
    ys, xs = tile_starts(rows, tile, overlap), tile_starts(cols, tile, overlap)
    output = _Output(full_w, full_h, width, height)
    pending: tuple[int, np.ndarray, np.ndarray] | None = None  # (first model row, weighted sum, weights)
    for i, y0 in enumerate(ys):
        y1 = min(y0 + tile, rows)
        band = _blend_row(run, pixels[y0:y1], xs, tile, scale)
        weight = _ramp((y1 - y0) * scale, (ys[i - 1] + tile - y0) * scale if i else 0,
                       (y1 - ys[i + 1]) * scale if i + 1 < len(ys) else 0)[:, None, None]
        top = y0 * scale
        if pending is None:
            pending = (top, band * weight, weight)
        else:
            first, total, weights = pending
            grown = top + band.shape[0] - first
            total = np.concatenate([total, np.zeros((grown - total.shape[0], *total.shape[1:]), np.float32)])
            weights = np.concatenate([weights, np.zeros((grown - weights.shape[0], 1, 1), np.float32)])
            total[top - first:] += band * weight
            weights[top - first:] += weight
            pending = (first, total, weights)
        first, total, weights = pending
        done = (ys[i + 1] * scale if i + 1 < len(ys) else full_h) - first  # rows no later piece reaches
        output.add(np.clip(np.rint(total[:done] / weights[:done] * 255.0), 0, 255).astype(np.uint8))
        pending = (first + done, total[done:], weights[done:])
    return output.image


def _blend_row(run: Callable[[np.ndarray], np.ndarray], strip: np.ndarray, xs: list[int], tile: int,
               scale: int) -> np.ndarray:
    """One row of pieces through `run`, blended across their overlaps: (rows x scale) x (width x scale) x C."""
    cols = strip.shape[1]
    total: np.ndarray | None = None
    weights = np.zeros((1, cols * scale, 1), np.float32)
    for j, x0 in enumerate(xs):
        x1 = min(x0 + tile, cols)
        piece = run(np.ascontiguousarray(strip[:, x0:x1]))
        if total is None:
            total = np.zeros((piece.shape[0], cols * scale, piece.shape[2]), np.float32)
        weight = _ramp((x1 - x0) * scale, (xs[j - 1] + tile - x0) * scale if j else 0,
                       (x1 - xs[j + 1]) * scale if j + 1 < len(xs) else 0)[None, :, None]
        total[:, x0 * scale:x1 * scale] += piece * weight
        weights[:, x0 * scale:x1 * scale] += weight
    return total / weights


def _ramp(length: int, head: int, tail: int) -> np.ndarray:
    """Weights along one side of a piece: rising over the `head` pixels it shares with the piece before, falling
    over the `tail` it shares with the next, 1 between (never 0, so every pixel has weight)."""
    weight = np.ones(length, np.float32)
    if head > 0:
        weight[:head] = (np.arange(head, dtype=np.float32) + 0.5) / head
    if tail > 0:
        weight[length - tail:] = np.minimum(weight[length - tail:], (np.arange(tail, 0, -1, dtype=np.float32) - 0.5)
                                            / tail)
    return weight


class _Output:
    """The width x height result, filled band by band from finished model-scale rows (full_w x full_h in all)."""

    def __init__(self, full_w: int, full_h: int, width: int, height: int) -> None:
        self.full_w, self.full_h, self.width, self.height = full_w, full_h, width, height
        self.ratio = full_h / height  # model rows per output row
        self.reach = LANCZOS_SUPPORT * max(self.ratio, 1.0) + 2  # model rows the filter reads each side (+ margin)
        self.buffer: np.ndarray | None = None  # finished model rows not needed any more are dropped
        self.first = 0  # the model row buffer[0] is
        self.made = 0  # output rows made so far
        self.bands: list[Image.Image] = []

    def add(self, rows: np.ndarray) -> None:
        """Finished model-scale rows (uint8, in order); makes every output row they complete."""
        self.buffer = rows if self.buffer is None else np.concatenate([self.buffer, rows])
        end = self.first + self.buffer.shape[0]
        last = self.height if end >= self.full_h else \
            min(self.height, max(0, math.floor((end - self.reach) / self.ratio - 0.5)))
        if last <= self.made:
            return
        picture = Image.fromarray(self.buffer[..., 0] if self.buffer.shape[2] == 1 else self.buffer)
        if (self.width, self.height) == (self.full_w, self.full_h):  # the model's own size: the rows as they are
            band = picture.crop((0, self.made - self.first, self.full_w, last - self.first))
        else:
            box = (0, self.made * self.ratio - self.first, self.full_w, last * self.ratio - self.first)
            band = picture.resize((self.width, last - self.made), Image.Resampling.LANCZOS, box=box)
        self.bands.append(band)
        self.made = last
        keep_from = max(self.first, math.floor((self.made + 0.5) * self.ratio - self.reach))
        self.buffer = self.buffer[keep_from - self.first:]
        self.first = keep_from

    @property
    def image(self) -> Image.Image:
        out = Image.new(self.bands[0].mode, (self.width, self.height))
        top = 0
        for band in self.bands:
            out.paste(band, (0, top))
            top += band.height
        return out
