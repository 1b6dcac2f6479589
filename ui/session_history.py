"""Each browser tab's history of results, kept on the server: a run, a delete and an upscale that overlap all change
the one list (the tab's gr.State holds a copy to show), so none of them undoes another (a delete during a run no
longer comes back with the run's next image, and an upscale made meanwhile stays)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

Entry = dict[str, Any]


class SessionHistories:
    """The newest `limit` results of each session, newest first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lists: dict[str, list[Entry]] = {}
        self._lock = threading.Lock()

    def add(self, session: str, entry: Entry, shown: list[Entry] | None) -> list[Entry]:
        """`entry` first in `session`'s history (which starts as `shown`, the tab's copy); the history after."""
        with self._lock:
            items = self._list(session, shown)
            items.insert(0, entry)
            del items[self.limit:]
            return list(items)

    def remove(self, session: str, path: str | Path, shown: list[Entry] | None) -> list[Entry]:
        """`session`'s history without the entries of the file `path`; the history after."""
        with self._lock:
            items = self._list(session, shown)
            items[:] = [entry for entry in items if not _same_file(entry["path"], path)]
            return list(items)

    def forget(self, session: str) -> None:
        """The tab was closed."""
        with self._lock:
            self._lists.pop(session, None)

    def _list(self, session: str, shown: list[Entry] | None) -> list[Entry]:
        if not session:  # no session to keep it for: the tab's copy is all there is
            return list(shown or [])
        return self._lists.setdefault(session, list(shown or []))


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
