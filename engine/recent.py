"""A value computed again only once it is a few seconds old: the folder listings (wildcards, styles) that the status
tab and the Image tab's lists ask for every second, so a file added while the app runs shows up soon."""
from __future__ import annotations

import time
from typing import Callable, Generic, TypeVar

LISTING_TTL_S = 5.0  # how old a listing may get before it is read again

T = TypeVar("T")


class Recent(Generic[T]):
    """`compute()`'s value, computed again when it is LISTING_TTL_S old."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._made: tuple[float, T] | None = None

    def get(self) -> T:
        made = self._made
        if made is None or time.monotonic() - made[0] >= LISTING_TTL_S:
            made = self._made = (time.monotonic(), self._compute())
        return made[1]

    def forget(self) -> None:
        """Compute the value again at the next `get` (what it reads has just changed)."""
        self._made = None
