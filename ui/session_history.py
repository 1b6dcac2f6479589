"""Each browser tab's history of results, kept on the server: a run, a delete and an upscale that overlap all change
the one list (the tab's gr.State holds a copy to show), so none of them undoes another (a delete during a run no
longer comes back with the run's next image, and an upscale made meanwhile stays)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

Entry = dict[str, Any]


MAX_SESSIONS = 1000  # tabs whose history is kept (a tab closed without its unload event is dropped in time)


class SessionHistories:
    """The newest `limit` results of each session, newest first; the `max_sessions` most recently used sessions."""

    def __init__(self, limit: int, max_sessions: int = MAX_SESSIONS) -> None:
        self.limit, self.max_sessions = limit, max_sessions
        self._lists: dict[str, list[Entry]] = {}  # least recently used first
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
        items = self._lists.pop(session, None)
        self._lists[session] = items = list(shown or []) if items is None else items  # now the most recent
        while len(self._lists) > self.max_sessions:
            del self._lists[next(iter(self._lists))]
        return items


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
