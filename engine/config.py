"""Settings from the environment (and flags, through `Settings.from_env(**overrides)`)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from .compiled import (COMPILE_MODES, COMPILE_PROCESSES, COMPILE_SCOPES, DEFAULT_COMPILE_PROCESS, CompileOptions,
                       parse_compile_sizes)
from .limits import Limits
from .precision import dtype_problem

# step previews: auto is a TAESD decoder on a GPU when one is in a VAE-approx folder (on the CPU it costs 0.8 s a step
# at 512 px, bench/preview_cost.py), else the linear projection; taesd wherever its decoder is; projection always
PREVIEW_METHODS = ("auto", "taesd", "projection")

DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = PROJECT_ROOT / "presets"


def parse_server_urls(raw: str) -> list[str]:
    """Split a comma-separated COMFYUI_API_URL into normalised http(s) base URLs.

    Raises ValueError for anything that is not an http(s) URL with a host.
    """
    urls: list[str] = []
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlparse(part)
        try:
            port_ok = parsed.port is None or parsed.port > 0  # reading the port checks it ("8l88" is none)
        except ValueError:
            port_ok = False
        if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
            raise ValueError(f"COMFYUI_API_URL entries must be http(s) URLs with a host and a port number, "
                             f"got {part!r}.")
        urls.append(part.rstrip("/"))
    return urls


DEVICE_NAME = re.compile(r"(cpu|mps|cuda(:\d+)?)")  # one entry of GATOR_DEVICES


def devices_problem(setting: str) -> str | None:
    """A sentence when GATOR_DEVICES names something that is not a device ("cuda:0,cuda:1", "cpu")."""
    wrong = [name.strip() for name in setting.split(",") if name.strip() and not DEVICE_NAME.fullmatch(name.strip())]
    if wrong:
        return (f"GATOR_DEVICES lists devices separated by commas, each cpu, mps, cuda or cuda:N "
                f"(got {', '.join(map(repr, wrong))}).")
    return None


def user_cache_dir(name: str) -> Path:
    """`name` in the app's folder of the user's cache: ~/.cache/gator-studio/`name` (XDG_CACHE_HOME respected)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gator-studio" / name


def env_number(name: str, default: float | None, *, above_zero: bool = False) -> float | None:
    """The number environment variable `name` holds (empty or unset: `default`); ValueError with a sentence naming
    the variable for anything else (not a number, NaN, or with `above_zero` 0 or less)."""
    text = (os.environ.get(name) or "").strip()
    if not text:
        return default
    sentence = f"{name} must be a number{' above 0' if above_zero else ''} (got {text!r})."
    try:
        value = float(text)
    except ValueError:
        raise ValueError(sentence) from None
    if value != value or value in (float("inf"), float("-inf")) or (above_zero and value <= 0):
        raise ValueError(sentence)
    return value


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Every knob of the engine, with the environment variable that sets it."""

    comfyui_urls: list[str] = field(default_factory=lambda: [DEFAULT_COMFYUI_URL])  # COMFYUI_API_URL
    comfyui_dir: Path | None = None  # COMFYUI_DIR / --comfyui-dir: a ComfyUI install the app starts when none answers
    comfyui_python: Path | None = None  # COMFYUI_PYTHON: its Python (default: COMFYUI_DIR/venv or .venv)
    enable_cloud_apis: bool = False  # ENABLE_CLOUD_APIS: the hosted text-to-image backend (engine/backends/cloud.py)
    cloud_provider: str = "hf-inference"  # GATOR_CLOUD_PROVIDER: an Inference Provider of huggingface_hub, or auto
    cloud_model: str = "black-forest-labs/FLUX.1-schnell"  # GATOR_CLOUD_MODEL: a Hub model id
    cloud_base_url: str | None = None  # GATOR_CLOUD_BASE_URL: an endpoint speaking the HF Inference API instead
    cloud_token: str | None = field(default=None, repr=False)  # HF_TOKEN
    cloud_timeout_s: float = 120.0  # GATOR_CLOUD_TIMEOUT: longest wait for one hosted image
    cloud_max_wait_s: float = 10.0  # GATOR_CLOUD_MAX_WAIT: a 429/503 asking to wait this long or less is retried once
    # GATOR_PREFER / --prefer: the backend auto mode tries first (local, or a backend's name); empty: the usual
    # order (ComfyUI, then this machine, then the cloud when it is on)
    prefer: str = ""
    output_dir: Path = PROJECT_ROOT / "outputs"  # GATOR_OUTPUT_DIR
    models_dir: Path | None = None  # GATOR_MODELS_DIR
    workflows_dir_override: Path | None = None  # GATOR_WORKFLOWS_DIR (see `workflows_dir`)
    wildcards_dir_override: Path | None = None  # GATOR_WILDCARDS_DIR (see `wildcards_dir`)
    styles_dir_override: Path | None = None  # GATOR_STYLES_DIR (see `styles_dir`)
    # GATOR_MODEL_FOLDERS (separated by os.pathsep) and --models-dir: more folders to find model files in,
    # e.g. an A1111 or ComfyUI install
    model_folders: tuple[Path, ...] = ()
    # GATOR_PIPELINE_CONFIGS: a folder of <family>/ diffusers config folders (sd15/, sdxl/) that single-file
    # checkpoints load with instead of presets/pipelines/ (a variant with other layer sizes, say)
    pipeline_configs: Path | None = None
    tiny_model_dir: Path | None = None  # GATOR_TINY_MODEL_DIR (where the built-in model is cached)
    health_interval_s: float = 2.0  # GATOR_HEALTH_INTERVAL
    health_timeout_s: float = 2.0  # GATOR_HEALTH_TIMEOUT
    comfyui_timeout_s: float = 600.0  # GATOR_COMFYUI_TIMEOUT: longest wait for one ComfyUI job
    enable_comfyui: bool = True  # GATOR_ENABLE_COMFYUI=0 disables the ComfyUI backend entirely
    allow_downloads: bool = False  # GATOR_ALLOW_DOWNLOADS=1 lets diffusers fetch hub weights
    hf_endpoint: str | None = None  # HF_ENDPOINT: the Hugging Face Hub (or a mirror) model downloads come from
    limits: Limits = field(default_factory=Limits)  # per-request work limits (engine/limits.py)
    compile_mode: str = "auto"  # GATOR_COMPILE / --compile: auto (on for CUDA GPUs), on, off (engine/compiled.py)
    compile_sizes: str = ""  # GATOR_COMPILE_SIZES: "1024x1024,832x1216" compiled at load; empty: the model's native size
    compile_scope: str = "unet"  # GATOR_COMPILE_SCOPE: unet (the whole UNet) or blocks (its repeated transformer blocks)
    compile_process: str = DEFAULT_COMPILE_PROCESS  # GATOR_COMPILE_PROCESS: child (engine/compile_child.py) or inline
    dtype: str = "auto"  # GATOR_DTYPE: auto (float16 on GPUs, float32 on the CPU), float16, bfloat16, float32
    previews: str = "auto"  # GATOR_PREVIEWS: one of PREVIEW_METHODS
    # GATOR_GPU_MEMORY_GB: the GPU memory this app may use (a share of a bigger card); models that do not fit it
    # run with model CPU offload
    gpu_memory_gb: float | None = None
    # GATOR_DEVICES: the devices local generation runs on, one worker each ("cuda:0,cuda:1"); unset: every CUDA GPU
    devices: str = ""

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        env = os.environ
        settings = cls(
            comfyui_urls=parse_server_urls(env.get("COMFYUI_API_URL", DEFAULT_COMFYUI_URL)),
            comfyui_dir=Path(env["COMFYUI_DIR"]) if env.get("COMFYUI_DIR") else None,
            comfyui_python=Path(env["COMFYUI_PYTHON"]) if env.get("COMFYUI_PYTHON") else None,
            enable_cloud_apis=_env_bool("ENABLE_CLOUD_APIS"),
            cloud_provider=(env.get("GATOR_CLOUD_PROVIDER") or "hf-inference").strip(),
            cloud_model=(env.get("GATOR_CLOUD_MODEL") or "black-forest-labs/FLUX.1-schnell").strip(),
            cloud_base_url=(env.get("GATOR_CLOUD_BASE_URL") or "").strip().rstrip("/") or None,
            cloud_token=(env.get("HF_TOKEN") or "").strip() or None,
            cloud_timeout_s=env_number("GATOR_CLOUD_TIMEOUT", 120.0, above_zero=True),
            cloud_max_wait_s=env_number("GATOR_CLOUD_MAX_WAIT", 10.0),
            prefer=(env.get("GATOR_PREFER") or "").strip().lower(),
            output_dir=Path(env.get("GATOR_OUTPUT_DIR") or PROJECT_ROOT / "outputs"),
            models_dir=Path(env["GATOR_MODELS_DIR"]) if env.get("GATOR_MODELS_DIR") else None,
            workflows_dir_override=Path(env["GATOR_WORKFLOWS_DIR"]) if env.get("GATOR_WORKFLOWS_DIR") else None,
            wildcards_dir_override=Path(env["GATOR_WILDCARDS_DIR"]) if env.get("GATOR_WILDCARDS_DIR") else None,
            styles_dir_override=Path(env["GATOR_STYLES_DIR"]) if env.get("GATOR_STYLES_DIR") else None,
            model_folders=tuple(Path(p) for p in env.get("GATOR_MODEL_FOLDERS", "").split(os.pathsep) if p.strip()),
            pipeline_configs=Path(env["GATOR_PIPELINE_CONFIGS"]) if env.get("GATOR_PIPELINE_CONFIGS") else None,
            tiny_model_dir=Path(env["GATOR_TINY_MODEL_DIR"]) if env.get("GATOR_TINY_MODEL_DIR") else None,
            health_interval_s=env_number("GATOR_HEALTH_INTERVAL", 2.0, above_zero=True),
            health_timeout_s=env_number("GATOR_HEALTH_TIMEOUT", 2.0, above_zero=True),
            comfyui_timeout_s=env_number("GATOR_COMFYUI_TIMEOUT", 600.0, above_zero=True),
            enable_comfyui=_env_bool("GATOR_ENABLE_COMFYUI", True),
            allow_downloads=_env_bool("GATOR_ALLOW_DOWNLOADS"),
            hf_endpoint=(env.get("HF_ENDPOINT") or "").strip().rstrip("/") or None,
            limits=Limits.from_env(),
            compile_mode=(env.get("GATOR_COMPILE") or "auto").strip().lower(),
            compile_sizes=(env.get("GATOR_COMPILE_SIZES") or "").strip(),
            compile_scope=(env.get("GATOR_COMPILE_SCOPE") or "unet").strip().lower(),
            compile_process=(env.get("GATOR_COMPILE_PROCESS") or DEFAULT_COMPILE_PROCESS).strip().lower(),
            dtype=(env.get("GATOR_DTYPE") or "auto").strip().lower(),
            previews=(env.get("GATOR_PREVIEWS") or "auto").strip().lower(),
            gpu_memory_gb=env_number("GATOR_GPU_MEMORY_GB", None, above_zero=True),
            devices=(env.get("GATOR_DEVICES") or "").strip().lower(),
        )
        settings = replace(settings, **overrides) if overrides else settings
        if settings.compile_mode not in COMPILE_MODES:
            raise ValueError(f"GATOR_COMPILE must be one of {', '.join(COMPILE_MODES)} (got {settings.compile_mode!r}).")
        if settings.compile_scope not in COMPILE_SCOPES:
            raise ValueError(f"GATOR_COMPILE_SCOPE must be one of {', '.join(COMPILE_SCOPES)} "
                             f"(got {settings.compile_scope!r}).")
        if settings.compile_process not in COMPILE_PROCESSES:
            raise ValueError(f"GATOR_COMPILE_PROCESS must be one of {', '.join(COMPILE_PROCESSES)} "
                             f"(got {settings.compile_process!r}).")
        if settings.previews not in PREVIEW_METHODS:
            raise ValueError(f"GATOR_PREVIEWS must be one of {', '.join(PREVIEW_METHODS)} (got {settings.previews!r}).")
        problem = dtype_problem(settings.dtype) or devices_problem(settings.devices)
        if problem:
            raise ValueError(problem)
        parse_compile_sizes(settings.compile_sizes)  # a sentence now, not when a model loads
        return settings

    @property
    def model_roots(self) -> list[Path]:
        """Every folder model files are looked for in: GATOR_MODELS_DIR first, then the other folders."""
        return [root for root in (self.models_dir, *self.model_folders) if root]

    @property
    def workflows_dir(self) -> Path:
        """The user's ComfyUI workflows (API-format JSON): GATOR_WORKFLOWS_DIR, else <GATOR_MODELS_DIR>/workflows,
        else workflows/ in the project folder."""
        return self._user_folder(self.workflows_dir_override, "workflows")

    @property
    def wildcards_dir(self) -> Path:
        """The user's wildcard files (`__name__` in a prompt: name.txt): GATOR_WILDCARDS_DIR, else
        <GATOR_MODELS_DIR>/wildcards, else wildcards/ in the project folder. presets/wildcards backs it up."""
        return self._user_folder(self.wildcards_dir_override, "wildcards")

    @property
    def styles_dir(self) -> Path:
        """The user's prompt style files (A1111's CSV, Fooocus's JSON, YAML): GATOR_STYLES_DIR, else
        <GATOR_MODELS_DIR>/styles, else styles/ in the project folder (engine/styles.py)."""
        return self._user_folder(self.styles_dir_override, "styles")

    def _user_folder(self, override: Path | None, name: str) -> Path:
        """A folder of the user's files: the one the environment names, else `name` beside the models, else `name`
        in the project folder."""
        if override:
            return Path(override)
        return Path(self.models_dir) / name if self.models_dir else PROJECT_ROOT / name

    @property
    def compile_options(self) -> CompileOptions:
        """How local UNets are compiled (engine/compiled.py)."""
        return CompileOptions(mode=self.compile_mode, scope=self.compile_scope, cache_dir=self.compile_cache_dir,
                              sizes=parse_compile_sizes(self.compile_sizes), process=self.compile_process)

    @property
    def compile_cache_dir(self) -> Path:
        """Where compiled UNet code is kept across restarts: beside the models, else in the user's cache."""
        return Path(self.models_dir) / ".compile-cache" if self.models_dir else user_cache_dir("compile-cache")

    @property
    def file_hash_cache(self) -> Path:
        """Where checkpoint hashes are remembered (engine/file_hashes.py): beside the models, else the user's cache."""
        return Path(self.models_dir) / ".file-hashes.json" if self.models_dir else user_cache_dir("file-hashes.json")

    @property
    def comfyui_log_dir(self) -> Path:
        """Where the logs of a ComfyUI the app started are written (the user's cache)."""
        return user_cache_dir("comfyui-logs")

    @property
    def tiny_dir(self) -> Path:
        """Where the built-in tiny model is saved (built on first use)."""
        if self.tiny_model_dir:
            return self.tiny_model_dir
        return user_cache_dir("tiny-model")
