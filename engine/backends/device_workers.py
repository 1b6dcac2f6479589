"""The local backend's workers, one per device (GPU), and how a request picks one.

Each worker keeps its own pipeline (one model at a time, with the LoRAs, VAE, embeddings and ControlNet applied to
it), its own compiled UNet and upscaler, and runs one job at a time. A request goes to the worker with the fewest
jobs (running and waiting), as the ComfyUI pool picks the server with the shortest queue; among those, one that
already has the model loaded (no reload), then the one that started the fewest jobs (idle workers take turns).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..compiled import CompileOptions, UNetCompiler
from ..registry import Hardware
from .controlnet_models import ControlNets
from .embeddings import Embeddings
from .lora_adapters import LoraAdapters
from .preview_decoders import PreviewDecoders
from .upscale_models import UpscaleModels
from .vae_choice import VaeChoice


class DeviceWorker:
    """One device's share of local generation: its pipeline, what is applied to it, and a lock that makes it run one
    job at a time (the jobs waiting for it are counted)."""

    def __init__(self, hardware: Hardware, name: str, compile_options: CompileOptions = CompileOptions()) -> None:
        self.hardware = hardware
        self.name = name  # "cuda:1"; "cpu #2" when a device is listed twice
        self.compiler = UNetCompiler(compile_options, hardware.device)
        self.adapters = LoraAdapters()
        self.vae_choice = VaeChoice()
        self.controlnet_models = ControlNets()
        self.embeddings = Embeddings()
        self.upscale_models = UpscaleModels()
        self.preview_decoders = PreviewDecoders()
        self.pipe: Any = None
        self.pipe_key: tuple[str, str] | None = None  # (model id, weights location) of `pipe`
        self.load_lock = threading.Lock()
        self.run_lock = threading.Lock()
        self.loads = 0  # how many times a pipeline was loaded from disk here
        self._count_lock = threading.Lock()
        self.waiting = 0
        self.started = 0  # jobs begun here since start-up
        self.done = 0

    @property
    def device(self) -> str:
        return self.hardware.torch_device

    @property
    def loaded_model(self) -> str | None:
        return self.pipe_key[0] if self.pipe_key else None

    @property
    def busy(self) -> bool:
        return self.run_lock.locked()

    def load(self) -> int:
        """Jobs here now: the running one and those waiting."""
        return self.waiting + int(self.busy)

    def enter(self) -> None:
        """A job is handed to this worker (it waits for `run_lock` next)."""
        with self._count_lock:
            self.waiting += 1
            self.started += 1

    @contextmanager
    def running(self) -> Iterator[None]:
        """Hold this worker for one job (claimed through `WorkerPool.claim`): waits for the job before it."""
        with self.run_lock:
            with self._count_lock:
                self.waiting -= 1
            try:
                yield
            finally:
                with self._count_lock:
                    self.done += 1

    def snapshot(self) -> dict[str, Any]:
        """The status tab's row."""
        state = "running" if self.busy else "idle"
        if self.waiting:
            state += f", {self.waiting} waiting"
        return {"name": self.name, "device": self.device, "device_name": self.hardware.device_name,
                "vram_gb": round(self.hardware.vram_gb, 1), "loaded_model": self.loaded_model, "state": state,
                "jobs_done": self.done, "compile": self.compiler.snapshot()}


def worker_names(devices: Sequence[Hardware]) -> list[str]:
    """Each device's worker name: its torch device, numbered when one is listed twice ("cpu #1", "cpu #2")."""
    plain = [d.torch_device for d in devices]
    return [name if plain.count(name) == 1 else f"{name} #{plain[:i + 1].count(name)}" for i, name in enumerate(plain)]


def pick_worker(workers: Sequence[DeviceWorker], model_id: str | None = None) -> int:
    """The index of the worker a request for `model_id` goes to: the fewest jobs, then the model already loaded,
    then the fewest jobs started (idle workers take turns), then the first (`min` keeps the first of equals)."""
    return min(range(len(workers)), key=lambda i: (workers[i].load(), workers[i].loaded_model != model_id,
                                                   workers[i].started))


class WorkerPool:
    """The local backend's workers; `claim` picks one and counts the job there in one step, so requests arriving
    together spread over idle workers."""

    def __init__(self, devices: Sequence[Hardware], compile_options: CompileOptions = CompileOptions()) -> None:
        self.workers = [DeviceWorker(device, name, compile_options)
                        for device, name in zip(devices, worker_names(devices))]
        self._lock = threading.Lock()

    def __iter__(self):
        return iter(self.workers)

    def __len__(self) -> int:
        return len(self.workers)

    def __getitem__(self, index: int) -> DeviceWorker:
        return self.workers[index]

    def claim(self, model_id: str | None = None) -> DeviceWorker:
        """The worker a job for `model_id` runs on (see `pick_worker`), with the job counted there."""
        with self._lock:
            worker = self.workers[pick_worker(self.workers, model_id)]
            worker.enter()
            return worker

    def snapshot(self) -> list[dict[str, Any]]:
        return [worker.snapshot() for worker in self.workers]
