"""The model catalogue (presets/models.yaml), the hardware probe, and choosing the best model that fits."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import yaml

from .config import PRESETS_DIR

logger = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry; see presets/models.yaml for the meaning of each field."""

    id: str
    label: str
    backend: str  # the name of the backend that runs it (engine/backends/)
    family: str
    rank: int = 0
    hub_id: str | None = None
    single_file: str | None = None
    pipeline: str = "StableDiffusionPipeline"
    size_gb: float = 0.0
    min_vram_gb: float = 0.0
    min_ram_gb: float = 0.0
    default_steps: int = 20
    default_guidance: float = 7.0
    native_size: int = 512
    comfyui: list[dict[str, Any]] = field(default_factory=list)  # ComfyUI workflow variants: {workflow, files}
    builtin: bool = False  # made from config with random weights (the tiny demo model): runs anywhere
    inpainting: bool = False  # its UNet also takes the mask and the masked image: inpaint requests only
    license: str = "unknown"  # the weights' license (the model picker, the status tab, the PNG's "Model license")
    v_prediction: bool = False  # a checkpoint that predicts v (its file says so): its sampler is told
    zero_snr: bool = False  # ... and was trained with a zero terminal SNR schedule


@lru_cache(maxsize=None)
def load_catalogue() -> tuple[ModelSpec, ...]:
    """Every model in presets/models.yaml, best first."""
    data = yaml.safe_load((PRESETS_DIR / "models.yaml").read_text())
    specs = [ModelSpec(**entry) for entry in data["models"]]
    return tuple(sorted(specs, key=lambda s: -s.rank))


def find_model(model_id: str) -> ModelSpec | None:
    """The catalogue entry whose id or label matches `model_id` (case-insensitive)."""
    key = model_id.strip().lower()
    for spec in load_catalogue():
        if key in (spec.id.lower(), spec.label.lower()):
            return spec
    return None


@dataclass(frozen=True)
class Family:
    """One model family (presets/families.yaml): its defaults, and the pipeline that loads a single file of
    it locally (None: no local single-file loading for it)."""

    id: str
    label: str
    native_size: int = 512
    default_steps: int = 20
    default_guidance: float = 7.0
    min_ram_gb: float = 0.0
    pipeline: str | None = None
    inpaint_pipeline: str | None = None  # the pipeline of the family's inpainting checkpoints (UNet in_channels 9)
    rank: int = 0
    clip_skip: bool = False  # A1111's Clip skip applies (presets/families.yaml says for which)
    freeu: dict[str, float] | None = None  # FreeU's b1, b2, s1, s2 for the family's UNet (None: not a UNet model)


def clip_skip_for(model: ModelSpec, clip_skip: int) -> int:
    """The Clip skip a request's `clip_skip` gives on `model`: as asked where its family takes one, else 1."""
    return clip_skip if family_of(model.family).clip_skip else 1


def freeu_for(model: ModelSpec) -> dict[str, float] | None:
    """FreeU's b1, b2, s1, s2 on `model` (presets/families.yaml), or None where its family has no UNet for it."""
    values = family_of(model.family).freeu
    return dict(values) if values else None


@lru_cache(maxsize=None)
def load_families() -> dict[str, Family]:
    data = yaml.safe_load((PRESETS_DIR / "families.yaml").read_text())
    return {name: Family(id=name, **entry) for name, entry in data["families"].items()}


def family_of(name: str | None) -> Family:
    """The family `name`, or an unnamed one with generic defaults."""
    return load_families().get(name or "") or Family(id=name or "unknown", label="unknown family")


@dataclass(frozen=True)
class Hardware:
    """What this machine offers for local generation."""

    device: str  # cuda | mps | cpu
    device_name: str
    vram_gb: float  # free-able GPU memory (total for CUDA); 0 on CPU
    ram_gb: float
    index: int | None = None  # which GPU of several (cuda:1); None: the device's default one

    @property
    def torch_device(self) -> str:
        """The device as torch names it: "cuda:1" for one GPU of several, else the kind ("cuda", "cpu")."""
        return f"{self.device}:{self.index}" if self.index is not None and self.device == "cuda" else self.device

    def describe(self) -> str:
        if self.device == "cpu":
            return f"CPU, {self.ram_gb:.1f} GiB RAM"
        return f"{self.device_name} ({self.vram_gb:.1f} GiB), {self.ram_gb:.1f} GiB RAM"


def _ram_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / GIB
    except ImportError:  # pragma: no cover - psutil is a requirement, this is belt and braces
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def probe_hardware() -> Hardware:
    """Look at CUDA, MPS and RAM. Never raises."""
    import torch

    ram = _ram_gb()
    try:
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return Hardware("cuda", props.name, props.total_memory / GIB, ram)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            # Apple silicon shares memory with the CPU.
            return Hardware("mps", "Apple GPU", ram * 0.75, ram)
    except Exception as err:  # a broken driver must not stop the app
        logger.warning("GPU probe failed (%s); using the CPU.", err)
    return Hardware("cpu", "CPU", 0.0, ram)


def local_devices(setting: str, probed: Hardware) -> list[Hardware]:
    """The devices local generation runs on, one worker each: GATOR_DEVICES's list ("cuda:0,cuda:1"; "cpu,cpu" gives
    two CPU workers), or, unset, every CUDA GPU (one `probed` device otherwise). A listed GPU this machine lacks is
    left out with a warning; with none left, `probed`."""
    names = [name.strip().lower() for name in setting.split(",") if name.strip()]
    count = cuda_device_count() if probed.device == "cuda" or any(n.startswith("cuda") for n in names) else 0
    if not names:
        return [_cuda_device(i, probed.ram_gb) for i in range(count)] if count > 1 else [probed]
    devices = []
    for number, name in enumerate(names):
        kind, _, index = name.partition(":")
        if kind == "cuda":
            gpu = int(index or 0)
            if gpu < count:
                devices.append(_cuda_device(gpu, probed.ram_gb))
            else:
                logger.warning("GATOR_DEVICES names %s, but this machine has %d CUDA GPU(s): left out.", name, count)
        elif kind == probed.device or kind == "cpu":
            same = probed if kind == probed.device else Hardware("cpu", "CPU", 0.0, probed.ram_gb)
            devices.append(replace(same, index=number))
        else:
            logger.warning("GATOR_DEVICES names %s, which this machine does not have: left out.", name)
    return devices or [probed]


def _cuda_device(index: int, ram_gb: float) -> Hardware:
    import torch

    props = torch.cuda.get_device_properties(index)
    return Hardware("cuda", props.name, props.total_memory / GIB, ram_gb, index=index)


def cuda_device_count() -> int:
    """How many CUDA GPUs this machine has (0 without CUDA). Never raises."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as err:  # a broken driver must not stop the app
        logger.warning("CUDA device count failed (%s); assuming none.", err)
        return 0


def fits(spec: ModelSpec, hw: Hardware) -> bool:
    """Whether `spec` can run locally on `hw` (GPU memory for accelerators, RAM always)."""
    if spec.builtin:
        return True
    if hw.device == "cpu":
        # On the CPU a model needs its RAM and is slow, but it runs: honour min_ram_gb only.
        return hw.ram_gb >= spec.min_ram_gb
    return hw.vram_gb >= spec.min_vram_gb and hw.ram_gb >= spec.min_ram_gb * 0.5


def capped(hw: Hardware, gpu_memory_gb: float | None) -> Hardware:
    """`hw` with at most `gpu_memory_gb` of its GPU's memory: torch's allocator is held to that share of the card
    (models that do not fit then run with CPU offload, see `needs_offload`). Unchanged without a cap or a CUDA GPU."""
    if not gpu_memory_gb or hw.device != "cuda" or gpu_memory_gb >= hw.vram_gb:
        return hw
    import torch

    torch.cuda.set_per_process_memory_fraction(gpu_memory_gb / hw.vram_gb, hw.index)
    logger.info("GPU memory of %s capped at %.1f GiB of %.1f GiB", hw.torch_device, gpu_memory_gb, hw.vram_gb)
    return Hardware(hw.device, hw.device_name, gpu_memory_gb, hw.ram_gb, hw.index)


def needs_offload(spec: ModelSpec, hw: Hardware) -> bool:
    """True when the model fits only with `enable_model_cpu_offload` (GPU memory is tight)."""
    return hw.device == "cuda" and not spec.builtin and hw.vram_gb < spec.size_gb * 1.6


def builtin_model() -> ModelSpec:
    """The model that always runs (the tiny demo model)."""
    return next(s for s in load_catalogue() if s.builtin)


def catalogue_for(backend: str) -> list[ModelSpec]:
    """The catalogue entries a backend runs, best first."""
    return [s for s in load_catalogue() if s.backend == backend]


@lru_cache(maxsize=None)
def load_samplers() -> dict[str, dict[str, Any]]:
    """Sampler names and their meaning per backend (presets/samplers.yaml)."""
    return yaml.safe_load((PRESETS_DIR / "samplers.yaml").read_text())


def sampler_model_calls(key: Any) -> int:
    """How many times a step of the sampler `key` runs the model (2 for Heun's second-order steps; 1 for the rest
    and for a name that is no sampler)."""
    return int(load_samplers().get(key, {}).get("model_calls", 1)) if isinstance(key, str) else 1


def sampler_label(key: Any) -> Any:
    """A sampler's A1111 label ("DPM++ 2M Karras") for its samplers.yaml key; anything else as it is."""
    return load_samplers().get(key, {}).get("label", key) if isinstance(key, str) else key
