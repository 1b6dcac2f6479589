"""The one event stream every generation speaks, whichever backend runs it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from PIL import Image


@dataclass(frozen=True)
class Queued:
    """The request waits behind `position` others."""

    position: int


@dataclass(frozen=True)
class Started:
    """A backend has begun work on the request."""

    backend: str  # the backend's name (engine/backends/)
    model: str
    server: str | None = None
    stage: str = ""  # the pass it begins, where a request has several ("Hires fix"); "" for the first or only one


@dataclass(frozen=True)
class Progress:
    """One denoising step finished; `preview` is a small RGB image of the current latents, or None (previews off, or
    a step between two of a preview decoder's, which come at most every DECODED_PREVIEW_PERIOD_S)."""

    step: int
    total: int
    preview: Image.Image | None = None
    backend: str = ""
    stage: str = ""  # which pass of a request with several ("Hires fix"); "" for the only one


@dataclass(frozen=True)
class PlotCell:
    """An X/Y/Z plot begins its cell `number` of `total` (from 1, X fastest, then Y, then Z, as A1111 runs them);
    `label` names the cell's values ("Steps: 2, Seed: 1"). The cell's own events follow, ending in its Done."""

    number: int
    total: int
    label: str = ""


@dataclass(frozen=True)
class ListLine:
    """A prompt list begins its prompt `number` of `total` (counting the list's prompts, not its empty lines, from 1);
    `label` is the prompt. Its own events follow, ending in its Done (a Done per image of its batch)."""

    number: int
    total: int
    label: str = ""


@dataclass(frozen=True)
class Skipped:
    """Skip ended image `number` of `total` (of a batch, or a plot's cells) unfinished and unsaved; the job goes on
    with the next one."""

    number: int
    total: int


@dataclass(frozen=True)
class Fallback:
    """The first-choice backend failed; the request continues on another one."""

    reason: str
    to_backend: str


@dataclass(frozen=True)
class Done:
    """The image is saved; `result` is the ImageResult `generate_image` returns (a video's result dict)."""

    result: Any = None


@dataclass(frozen=True)
class Failed:
    """The request ended without an image; `error` is a sentence fit for the user."""

    error: str
    result: Any = None


Event = Union[Queued, Started, Progress, PlotCell, ListLine, Skipped, Fallback, Done, Failed]


@dataclass(frozen=True)
class Produced:
    """Internal: a backend's finished image, before the manager saves and wraps it."""

    image: Image.Image
    info: dict[str, Any] = field(default_factory=dict)
