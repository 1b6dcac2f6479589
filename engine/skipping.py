"""A1111's Skip: the image being made ends and the batch (or X/Y/Z plot) goes on with the next one.

A job listens to two switches: Stop (the `cancel` event) ends the whole job, Skip only the image being made. Each
image runs under `ImageSwitch`, which is set when either is, so every backend's one `is_set()` check serves both.
A Skip pressed between two images (while one is being saved) is dropped when the next one starts, as in A1111.
"""
from __future__ import annotations

from typing import Any


def is_set(switch: Any) -> bool:
    """Whether `switch` (an asyncio.Event, a threading.Event, an ImageSwitch or None) is set."""
    return switch is not None and switch.is_set()


class ImageSwitch:
    """The cancel switch of one image: set once the job is stopped (`stop`) or the image skipped (`skip`)."""

    def __init__(self, stop: Any, skip: Any) -> None:
        self.stop, self.skip = stop, skip

    def is_set(self) -> bool:
        return is_set(self.stop) or is_set(self.skip)


def image_switch(stop: Any, skip: Any) -> Any:
    """The switch one image runs under, its Skip cleared first; just `stop` when the job has no Skip."""
    if skip is None:
        return stop
    skip.clear()
    return ImageSwitch(stop, skip)


def was_skipped(stop: Any, skip: Any) -> bool:
    """Whether an image that ended cancelled was skipped (Skip set, Stop not): the job goes on."""
    return is_set(skip) and not is_set(stop)
