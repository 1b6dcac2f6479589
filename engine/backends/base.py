"""The protocol every backend implements, and what the router hands it (a Target).

A backend says which models it can run now, why it cannot run a given one (a sentence), turns a request
into a Target once (the router's plan), and streams a Target into the engine's events:
Started, Queued, Progress..., then one Produced (the manager saves and wraps it). It raises
BackendUnavailable when it cannot finish (auto mode then falls back) and GenerationCancelled on cancel.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, ClassVar

from PIL import Image

from ..config import Settings
from ..errors import BackendUnavailable
from ..events import Event, Produced
from ..registry import Hardware, ModelSpec
from ..request import GenerationRequest

OnChange = Callable[[str, str], None]  # (what happened, why): the status tab's switch log
INTERPOLATE = "interpolate"  # a feature: seed-travel in-betweens (a request's extra["interpolate"])
USER_WORKFLOW = "user_workflow"  # a feature: the user's own ComfyUI workflow (a request's user_workflow)
VARIATION = "variation"  # a feature: a variation seed's noise mixed in (a request's variation_strength above 0)
TILING = "tiling"  # a feature: a seamless image (a request's tiling)
MODEL_FILES_LEFT_OUT = "model_files_left_out"  # a Produced info key: a stand-in model ran without the request's
# LoRAs, VAE and ControlNet (made for the model asked for), so the image records none


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory gets: the settings, this machine, and where to report state changes."""

    settings: Settings
    hardware: Hardware
    devices: tuple[Hardware, ...] = ()  # the local devices, one worker each (empty: `hardware` alone)
    on_change: OnChange = lambda what, why: None
    start_monitor: bool = True  # False in tests that poll by hand


@dataclass(frozen=True)
class Target:
    """Where one request runs, decided once by the router: the backend, the model, and the backend's own
    choice (a server, a workflow variant, weights), plus warnings the result should carry."""

    backend: str
    model: ModelSpec
    server: str | None = None
    detail: Any = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendState:
    """What the badge and the status tab show of a backend."""

    name: str
    label: str
    enabled: bool
    ready: bool  # it can run at least one model now
    summary: str  # one line: "2 of 2 servers up", "unreachable", "disabled"
    short_reason: str = ""  # why it is not ready, for the badge ("ComfyUI unreachable")
    models: list[str] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """One way to generate images. Subclasses set `name`, `label` and `priority` (auto tries higher first);
    `local` marks the backend that runs on this machine, tried after the remote ones; `after_local` marks one
    auto tries only after that (the cloud: the last fallback). GATOR_PREFER puts any one of them first."""

    name: ClassVar[str]
    label: ClassVar[str]
    priority: ClassVar[int] = 0
    local: ClassVar[bool] = False
    after_local: ClassVar[bool] = False
    features: ClassVar[frozenset[str]] = frozenset()  # e.g. INTERPOLATE

    def start(self) -> None:
        """Begin background work (health polling); called once by the manager."""

    def plain_name(self, model: ModelSpec) -> str:
        """The name `model` is known by across backends (a checkpoint's file name without its extension): a model
        two backends list under the same plain name is one entry that either can run."""
        return model.id

    def loras(self) -> dict[str, str | None]:
        """The LoRAs a request may name on this backend: name -> family (None when unknown)."""
        return {}

    def controlnets(self) -> dict[str, str | None]:
        """The ControlNets a request may name on this backend: name -> family (None when unknown)."""
        return {}

    def vaes(self) -> list[str]:
        """The VAE files a request may name on this backend."""
        return []

    def embeddings(self) -> dict[str, int]:
        """The textual-inversion embeddings a prompt may name here: name -> the token places it takes."""
        return {}

    def upscalers(self) -> list[str]:
        """The model upscalers (ESRGAN family) a request may name on this backend, by file name without extension."""
        return []

    async def upscale(self, image: Image.Image, width: int, height: int, upscaler: str,
                      cancel: Any = None) -> Image.Image:
        """`image` enlarged with the model upscaler `upscaler` (one of `upscalers()`) to exactly width x height.
        Raises BackendUnavailable when it cannot finish (the router's next choice then takes it), InvalidRequest
        for a file that cannot be used, GenerationCancelled once `cancel` is set."""
        raise BackendUnavailable(f"{self.label} has no model upscalers.")

    def rescan(self) -> None:
        """Look for models again (the status tab's Rescan); backends that watch their models need nothing."""

    def shutdown(self) -> None:
        """Stop background work."""

    def add_server(self, url: str) -> bool:
        """Take a server started at run time (a managed ComfyUI) into this backend's pool; False when this backend
        has no pool of such servers."""
        return False

    def remove_server(self, url: str) -> None:
        """Drop a server `add_server` took (it was stopped, or moved to another port)."""

    @property
    def enabled(self) -> bool:
        return True

    @abstractmethod
    def models(self) -> list[ModelSpec]:
        """The models this backend can run now, best first."""

    @abstractmethod
    def find(self, model_id: str) -> ModelSpec | None:
        """The model named `model_id` (id or label) if this backend knows it, runnable now or not."""

    def model_with_hash(self, model_hash: str) -> ModelSpec | None:
        """The model whose checkpoint file has A1111's "Model hash" `model_hash`, among the files this backend has
        hashed; None here (a backend that does not hash its files)."""
        return None

    @abstractmethod
    def why_not(self, model: ModelSpec | None) -> str | None:
        """None when `model` (None: any model) can run now; otherwise a sentence saying why not."""

    @abstractmethod
    def plan(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        """Decide where `request` runs (None: this backend's best model). Raises BackendUnavailable."""

    @abstractmethod
    def stream(self, request: GenerationRequest, target: Target, cancel: Any = None,
               previews: bool = True) -> AsyncIterator[Event | Produced]:
        """Started, Queued?, Progress..., Produced for `target`."""

    @abstractmethod
    def state(self) -> BackendState:
        """What the badge and the status tab show."""

    def wrap_generation(self, decorator: Any) -> None:
        """Run this backend's work on this machine through `decorator` (ZeroGPU's `spaces.GPU`); backends
        that run elsewhere ignore it."""

    def missing(self) -> list[tuple[ModelSpec, str]]:
        """Known models this backend cannot run here, each with why (e.g. weights not found)."""
        return []

    def default_model(self) -> ModelSpec | None:
        """The model auto would use here now."""
        models = self.models()
        return models[0] if models else None
