"""LoRAs on the loaded diffusers pipeline: loaded once per file (diffusers' `load_lora_weights`, through
peft), weighted per request with `set_adapters`, and switched off for a request without them, so nothing
leaks into the next image and the checkpoint is never reloaded."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest, first_line

logger = logging.getLogger(__name__)

KEEP_LOADED = 16  # adapters kept on the pipeline; the least recently used beyond this are deleted


@dataclass(frozen=True)
class LoraFile:
    """A LoRA a request uses: its listed name, file, weight, and its file's stamp (changes with the file)."""

    name: str
    path: Path
    weight: float
    stamp: tuple[str, int, float]


class LoraAdapters:
    """The adapters loaded into one pipeline object (a new pipeline starts with none)."""

    def __init__(self) -> None:
        self._pipe_id: int | None = None
        self._loaded: dict[tuple[str, int, float], str] = {}  # file stamp -> adapter name, oldest first
        self._active = False

    def apply(self, pipe: Any, loras: list[LoraFile], model_label: str) -> None:
        """Make `pipe` run with exactly `loras` at their weights (none: the plain checkpoint)."""
        if id(pipe) != self._pipe_id:
            self._pipe_id, self._loaded, self._active = id(pipe), {}, False
        if not loras:
            if self._active:
                pipe.disable_lora()
                self._active = False
            return
        self._active = True  # from the first load on: diffusers turns each LoRA on as it loads it, so one loaded
        # before another fails is on too, and the next request without LoRAs must switch it off
        names = [self._load(pipe, lora, model_label) for lora in loras]
        pipe.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
        pipe.enable_lora()
        self._trim(pipe, keep=set(names))

    def _load(self, pipe: Any, lora: LoraFile, model_label: str) -> str:
        adapter = self._loaded.pop(lora.stamp, None)
        if adapter is None:
            adapter = _adapter_name(lora, len(self._loaded))
            try:
                pipe.load_lora_weights(str(lora.path), adapter_name=adapter)
            except Exception as err:
                _forget(pipe, adapter)
                logger.info("LoRA %s did not load on %s: %s", lora.path.name, model_label, err)
                raise InvalidRequest(f"The LoRA {lora.name} does not fit {model_label} ({first_line(err, 200)}); "
                                     "use a LoRA made for this model's family.") from None
            logger.info("Loaded LoRA %s as adapter %s", lora.path.name, adapter)
        self._loaded[lora.stamp] = adapter  # most recently used last
        return adapter

    def _trim(self, pipe: Any, keep: set[str]) -> None:
        while len(self._loaded) > KEEP_LOADED:
            stamp, adapter = next((s, a) for s, a in self._loaded.items() if a not in keep)
            del self._loaded[stamp]
            _forget(pipe, adapter)


def _adapter_name(lora: LoraFile, index: int) -> str:
    """A peft adapter name for the file (letters, digits and _ only; unique per loaded file)."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', lora.name)[:40]}_{index}_{abs(hash(lora.stamp)) % 10**6}"


def _forget(pipe: Any, adapter: str) -> None:
    try:
        pipe.delete_adapters(adapter)
    except Exception:  # it was never (fully) loaded: nothing to delete
        pass
