"""Per-browser-session cancel switches: Stop in one tab never stops another tab's work."""
from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


class CancelSwitches:
    """Cancel events of the requests in flight, keyed by the Gradio session they belong to.

    Results never live here (they are in each session's gr.State); only the switch that lets the
    session's Stop button reach its own running requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    @contextmanager
    def request(self, session: str | None) -> Iterator[asyncio.Event]:
        """A fresh cancel event registered for `session` while the block runs."""
        event = asyncio.Event()
        key = session or ""
        with self._lock:
            self._events[key].add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._events.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._events[key]

    def cancel(self, session: str | None) -> int:
        """Set every cancel event of `session`; returns how many requests were asked to stop."""
        with self._lock:
            events = list(self._events.get(session or "", ()))
        for event in events:
            event.set()
        return len(events)

    def running(self, session: str | None) -> int:
        with self._lock:
            return len(self._events.get(session or "", ()))
