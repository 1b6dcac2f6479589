"""The user's own model files: found in model folders (A1111 and ComfyUI layouts included) and told apart
by their safetensors header alone (kind and family from tensor names and shapes; no weights are read).

Layouts understood under any model folder (and a folder may be an A1111 or ComfyUI install itself):
A1111 `models/Stable-diffusion`, `models/Lora`, `models/VAE`, `models/ControlNet`, `embeddings/`; ComfyUI
`models/checkpoints`, `models/loras`, `models/vae`, `models/controlnet`, `models/embeddings`; upscalers (ESRGAN
family) in A1111's `models/ESRGAN` and `models/RealESRGAN` and ComfyUI's `models/upscale_models`. Anything else
found is classified by its header. A diffusers component folder (config.json beside
diffusion_pytorch_model.safetensors, as a diffusers ControlNet comes) is listed under the folder's name.

Pickle files (`.ckpt`, `.pt`, `.pth`, `.bin`) are refused everywhere but in the upscaler and TAESD folders: unpickling
can run code, and every other kind ships as .safetensors. Upscalers are different: ESRGAN-family models are
published almost only as `.pth` (so is TAESD, A1111's `models/VAE-approx` and ComfyUI's `models/vae_approx`, whose
decoders make sharp step previews), so a `.pth` in such a folder is accepted, and it is loaded with
`torch.load(weights_only=True)` (engine/backends/upscale_models.py), which rebuilds tensors and plain containers
and refuses anything else in the pickle, so loading it cannot run code. Its contents are judged when it is loaded.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)

CHECKPOINT, LORA, VAE, EMBEDDING, UPSCALER, CONTROLNET = "checkpoint", "lora", "vae", "embedding", "upscaler", \
    "controlnet"
PREVIEW_DECODER = "preview_decoder"  # TAESD's decoder: sharp step previews (engine/backends/preview_decoders.py)
KIND_LABELS = {CHECKPOINT: "checkpoint", LORA: "LoRA", VAE: "VAE", EMBEDDING: "embedding", UPSCALER: "upscaler",
               CONTROLNET: "ControlNet", PREVIEW_DECODER: "preview decoder"}
# folder names (case-insensitive) that say what a file below them is, as A1111 and ComfyUI name them
KIND_FOLDERS = {"stable-diffusion": CHECKPOINT, "checkpoints": CHECKPOINT, "lora": LORA, "loras": LORA,
                "lycoris": LORA, "vae": VAE, "embeddings": EMBEDDING, "esrgan": UPSCALER, "realesrgan": UPSCALER,
                "upscale_models": UPSCALER, "controlnet": CONTROLNET, "vae-approx": PREVIEW_DECODER,
                "vae_approx": PREVIEW_DECODER}
# TAESD decoders by file name (A1111's models/VAE-approx, ComfyUI's models/vae_approx): the family each decodes;
# SD 2.x shares SD 1.5's latent space
TAESD_DECODERS = {"taesd_decoder": ("sd15", "sd2"), "taesdxl_decoder": ("sdxl",)}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"  # a diffusers component folder's weights file (and its variants)
SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
UPSCALER_PICKLE = ".pth"  # the one pickle suffix accepted, only in an upscaler or TAESD folder (see the docstring)
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
CONTEXT_FAMILY = {768: "sd15", 1024: "sd2", 2048: "sdxl"}  # cross-attention width -> family


class UnreadableModel(ValueError):
    """A file that is not a complete safetensors file; `str(err)` is the sentence."""


@dataclass(frozen=True)
class ModelFile:
    """One model file found on disk: what it is (kind, family), or why it cannot be used (`problem`)."""

    path: Path
    kind: str | None  # checkpoint | lora | vae | embedding | controlnet | None (not a model this app uses)
    family: str | None  # sd15 | sd2 | sdxl | flux | sd3 | None (unknown)
    size: int
    mtime: float
    problem: str | None = None
    inpainting: bool = False  # a checkpoint whose UNet takes the masked image too
    license: str | None = None  # what the file's header metadata says (modelspec.license), None when it says nothing
    v_prediction: bool = False  # a checkpoint trained to predict v, not the noise (its marker tensor says so)
    zero_snr: bool = False  # ... with a zero terminal SNR schedule (NoobAI-XL V-Pred and the like)

    @cached_property
    def in_diffusers_folder(self) -> bool:
        """True for the weights of a diffusers component folder (config.json beside diffusion_pytorch_model...)."""
        return self.path.name.startswith(DIFFUSERS_WEIGHTS + ".") and (self.path.parent / "config.json").is_file()

    @property
    def name(self) -> str:
        """The name it is listed under: the file name without its extension (a diffusers folder's: the folder's)."""
        return self.path.parent.name if self.in_diffusers_folder else self.path.stem

    @property
    def stamp(self) -> tuple[str, int, float]:
        """Changes when the file changes (a remembered failure is kept until then)."""
        return str(self.path), self.size, self.mtime


LICENSE_KEYS = ("modelspec.license", "license")  # the header metadata keys a file's license is read from
V_PRED_KEY, ZERO_SNR_KEY = "v_pred", "ztsnr"  # a checkpoint's marker tensors, as ComfyUI reads them (supported_models)


def read_header(path: Path, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tensor table of a safetensors file ({name: {dtype, shape, data_offsets}}), checked against the
    file's size; its `__metadata__` strings go into `metadata` when given. Raises UnreadableModel with a sentence
    for anything else."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise UnreadableModel(f"{path.name} is not a safetensors file (it is {size} bytes long).")
            (length,) = struct.unpack("<Q", head)
            if length <= 1 or length > min(MAX_HEADER_BYTES, size - 8):
                raise UnreadableModel(f"{path.name} is not a safetensors file (its first bytes are not a "
                                      "safetensors header).")
            table = json.loads(handle.read(length))
    except OSError as err:
        raise UnreadableModel(f"{path.name} could not be read ({err.strerror or err}).") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableModel(f"{path.name} is not a safetensors file (its header is not JSON).") from err
    if not isinstance(table, dict):
        raise UnreadableModel(f"{path.name} is not a safetensors file (its header is not a table).")
    found = table.pop("__metadata__", None)
    if metadata is not None and isinstance(found, dict):
        metadata.update({str(k): v for k, v in found.items() if isinstance(v, str)})
    ends = [entry.get("data_offsets", [0, 0])[1] for entry in table.values() if isinstance(entry, dict)]
    if len(ends) != len(table):
        raise UnreadableModel(f"{path.name} is not a safetensors file (its header is malformed).")
    needed = 8 + length + max(ends, default=0)
    if size < needed:
        raise UnreadableModel(f"{path.name} is truncated: {size:,} of its {needed:,} bytes are on disk "
                              "(an interrupted copy or download?). Copy or download it again.")
    return table


def classify(table: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(kind, family, inpainting) from a safetensors tensor table."""
    names = list(table)

    def shape(name: str) -> list[int]:
        return list(table[name].get("shape") or [])

    def first(predicate) -> str | None:
        return next((n for n in names if predicate(n)), None)

    if first(lambda n: n.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) or ".lora_down." in n
             or ".lora_A." in n or ".lora.down." in n or "lora_linear_layer" in n):
        key = first(lambda n: "attn2" in n and ("to_k" in n or "to_v" in n)
                    and any(part in n for part in ("lora_down", "lora_A", "lora.down", "down.weight")))
        family = CONTEXT_FAMILY.get(shape(key)[-1]) if key else None
        if family is None and first(lambda n: n.startswith("lora_te2_") or "text_encoder_2" in n):
            family = "sdxl"
        if family is None and first(lambda n: "double_blocks" in n or "single_transformer_blocks" in n):
            family = "flux"
        return LORA, family, False
    hint = first(lambda n: n.startswith(("input_hint_block.", "control_model.input_hint_block.",
                                         "controlnet_cond_embedding.")))
    if hint:  # ControlNet: original layout (A1111's control_v11*, with or without control_model.) or diffusers'
        key = first(lambda n: "attn2.to_k.weight" in n)
        sdxl = first(lambda n: n.endswith(("add_embedding.linear_1.weight", "label_emb.0.0.weight")))
        return CONTROLNET, "sdxl" if sdxl else CONTEXT_FAMILY.get(shape(key)[-1]) if key else None, False
    if first(lambda n: "double_blocks." in n) or first(lambda n: n.startswith("transformer_blocks.") and
                                                           "attn.to_added_qkv" in n):
        return CHECKPOINT, "flux", False
    if first(lambda n: ".joint_blocks." in n):
        return CHECKPOINT, "sd3", False
    unet = first(lambda n: n.startswith("model.diffusion_model."))
    if unet:
        inpainting = shape("model.diffusion_model.input_blocks.0.0.weight")[1:2] == [9] \
            if "model.diffusion_model.input_blocks.0.0.weight" in table else False
        if first(lambda n: n.startswith("conditioner.embedders.")) or "model.diffusion_model.label_emb.0.0.weight" \
                in table:
            return CHECKPOINT, "sdxl", inpainting
        key = first(lambda n: n.startswith("model.diffusion_model.") and "attn2.to_k.weight" in n)
        return CHECKPOINT, CONTEXT_FAMILY.get(shape(key)[-1]) if key else None, inpainting
    if first(lambda n: n.startswith(("encoder.down.", "decoder.up.", "encoder.down_blocks.", "decoder.up_blocks."))):
        return VAE, None, False
    if "emb_params" in table:
        return EMBEDDING, CONTEXT_FAMILY.get(shape("emb_params")[-1]) if shape("emb_params") else None, False
    if "clip_g" in table and "clip_l" in table:
        return EMBEDDING, "sdxl", False
    if "string_to_param" in table or first(lambda n: n.startswith("string_to_param.")):
        return EMBEDDING, None, False
    return None, None, False


def inspect(path: Path, kind_hint: str | None = None) -> ModelFile:
    """What the file at `path` is, from its header; a bad file comes back with its `problem` sentence."""
    try:
        stat = path.stat()
    except OSError as err:
        return ModelFile(path, kind_hint, None, 0, 0.0, f"{path.name} could not be read ({err.strerror or err}).")
    if kind_hint == PREVIEW_DECODER:  # which latent space a TAESD decoder is for is in its name, not its shapes
        families = TAESD_DECODERS.get(path.stem.lower())
        if families is None or path.suffix.lower() not in (UPSCALER_PICKLE, *SUFFIXES):
            return ModelFile(path, None, None, stat.st_size, stat.st_mtime,
                             f"{path.name} is not a TAESD decoder this app uses (taesd_decoder or taesdxl_decoder, "
                             ".pth or .safetensors).")
        return ModelFile(path, PREVIEW_DECODER, families[0], stat.st_size, stat.st_mtime)  # read when loaded
    if kind_hint == UPSCALER and path.suffix.lower() == UPSCALER_PICKLE:
        return ModelFile(path, UPSCALER, None, stat.st_size, stat.st_mtime)  # judged when loaded (weights only)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return ModelFile(path, kind_hint, None, stat.st_size, stat.st_mtime,
                         f"{path.name} is a pickle file ({path.suffix}), which can run code when loaded; only "
                         ".safetensors files are loaded. Convert it, or download the .safetensors version.")
    metadata: dict[str, Any] = {}
    try:
        table = read_header(path, metadata)
        kind, family, inpainting = classify(table)
    except UnreadableModel as err:
        return ModelFile(path, kind_hint, None, stat.st_size, stat.st_mtime, str(err))
    if kind is None and kind_hint is None:
        return ModelFile(path, None, None, stat.st_size, stat.st_mtime,
                         f"{path.name} holds no checkpoint, LoRA, VAE, embedding or ControlNet this app knows (an "
                         "upscaler goes in an ESRGAN/ or upscale_models/ folder).")
    license = next((metadata[key].strip() for key in LICENSE_KEYS if str(metadata.get(key) or "").strip()), None)
    v_prediction = kind == CHECKPOINT and V_PRED_KEY in table
    return ModelFile(path, kind or kind_hint, family, stat.st_size, stat.st_mtime, inpainting=inpainting,
                     license=license, v_prediction=v_prediction, zero_snr=v_prediction and ZERO_SNR_KEY in table)


def _kind_from_folders(relative: Path) -> str | None:
    """The kind its nearest A1111/ComfyUI folder name says (None when no folder says)."""
    for part in reversed(relative.parts[:-1]):
        kind = KIND_FOLDERS.get(part.lower())
        if kind:
            return kind
    return None


def _walk(root: Path) -> Iterable[Path]:
    """Model-looking files under `root`, skipping hidden folders and diffusers folders (they are loaded whole)."""
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        if "model_index.json" in files:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(SUFFIXES + PICKLE_SUFFIXES) and not name.startswith("."):
                yield here / name


class ModelFolders:
    """The model files under a list of folders, found at start-up and again on `scan()`."""

    def __init__(self, roots: Iterable[Path | str | None]) -> None:
        self.roots = [Path(root).expanduser() for root in roots if root]
        self._lock = threading.Lock()
        self._files: list[ModelFile] = []
        self._known: dict[tuple[str, int, float], ModelFile] = {}  # unchanged files are not read again

    def scan(self) -> list[ModelFile]:
        """Look through every folder again; returns every model file found (bad ones with their problem)."""
        found: list[ModelFile] = []
        seen: set[Path] = set()
        for root in self.roots:
            if not root.is_dir():
                logger.warning("Model folder %s does not exist or is not a folder.", root)
                continue
            for path in _walk(root):
                try:
                    real = path.resolve()
                    stat = path.stat()
                except OSError:
                    continue
                if real in seen:
                    continue
                seen.add(real)
                hint = _kind_from_folders(path.relative_to(root))
                if hint is None and path.suffix.lower() in PICKLE_SUFFIXES:
                    continue  # a .pt/.bin outside the model folders is not ours to judge
                key = (str(path), stat.st_size, stat.st_mtime)
                entry = self._known.get(key) or inspect(path, hint)
                found.append(entry)
        with self._lock:
            self._files = found
            self._known = {entry.stamp: entry for entry in found}
        counts = {kind: sum(1 for f in found if f.kind == kind and not f.problem) for kind in KIND_LABELS}
        logger.info("Model folders scanned: %s.", ", ".join(f"{n} {KIND_LABELS[k]}" for k, n in counts.items()))
        return list(found)

    def files(self, kind: str | None = None, *, usable: bool = True) -> list[ModelFile]:
        """The files found by the last scan, of `kind` (all kinds for None); only usable ones by default."""
        with self._lock:
            files = list(self._files)
        return [f for f in files if (kind is None or f.kind == kind) and (not usable or f.problem is None)]

    def problems(self) -> list[ModelFile]:
        with self._lock:
            return [f for f in self._files if f.problem]

    def find(self, name: str, kind: str) -> ModelFile | None:
        """The usable `kind` file listed as `name`, with or without its extension (case-insensitive)."""
        key = (name or "").strip().lower()
        for entry in self.files(kind):
            if key in (entry.name.lower(), entry.path.name.lower()):
                return entry
        return None
