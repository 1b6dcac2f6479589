"""Each browser session's waiting jobs: Generate adds one, one runner per session takes them in order.

A job is the form's values at the moment of the click (as in A1111 and ComfyUI, a later edit of the form
does not change a queued job). The session's runner takes the next job or, when none is left, gives up
its place in one locked step, so a job added while the runner is finishing is never stranded.
"""
from __future__ import annotations

import itertools
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

SUMMARY_CHARS = 60


class QueueFull(Exception):
    """The session already has as many waiting jobs as it may; `str(err)` is the sentence to show."""


@dataclass(frozen=True)
class QueuedJob:
    """One click's settings, by the generate handler's argument names, and its id within the app."""

    id: int
    args: dict[str, Any] = field(compare=False)

    def summary(self) -> str:
        """A short line for the queue list: the prompt's start, size and steps (an X/Y/Z plot says so first)."""
        prompt = " ".join(str(self.args.get("prompt") or "").split()) or "(empty prompt)"
        if len(prompt) > SUMMARY_CHARS:
            prompt = prompt[:SUMMARY_CHARS - 1].rstrip() + "…"
        size = f"{self.args.get('width')}x{self.args.get('height')}"
        listed = self.args.get("prompt_list")
        if listed:
            count = len([line for line in str(listed.get("prompts") or "").splitlines() if line.strip()])
            return f"Prompt list of {count} line{'s' if count != 1 else ''} · {size} · {self.args.get('steps')} steps"
        return ("X/Y/Z plot · " if self.args.get("plot") else "") + f"{prompt} · {size} · {self.args.get('steps')} steps"


class JobQueue:
    """Waiting jobs per session, in order, and which sessions have a runner taking them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("A session must be able to queue at least one job.")
        self.limit = limit
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[QueuedJob]] = defaultdict(deque)
        self._running: set[str] = set()
        self._ids = itertools.count(1)

    def add(self, session: str, args: dict[str, Any], when_first: dict[str, Any] | None = None) -> int:
        """Queue a job (its args copied, with `when_first` added when no job runs or waits before it); returns how
        many jobs are ahead of it (the running one included).

        Raises QueueFull when the session's list is at its limit.
        """
        with self._lock:
            waiting = self._waiting[session]
            if len(waiting) >= self.limit:
                raise QueueFull(f"The queue already holds {self.limit} job{'s' if self.limit != 1 else ''}; "
                                "wait for one to start, or cancel one, before adding another.")
            ahead = len(waiting) + (session in self._running)
            waiting.append(QueuedJob(next(self._ids), {**args, **(when_first or {})} if ahead == 0 else dict(args)))
            return ahead

    def claim(self, session: str) -> bool:
        """Become the session's runner; False when it already has one (that runner will take the jobs)."""
        with self._lock:
            if session in self._running:
                return False
            self._running.add(session)
            return True

    def next(self, session: str) -> QueuedJob | None:
        """For the runner: the next job, or None after giving up the runner's place (nothing is waiting)."""
        with self._lock:
            waiting = self._waiting.get(session)
            if waiting:
                return waiting.popleft()
            self._waiting.pop(session, None)
            self._running.discard(session)
            return None

    def release(self, session: str) -> None:
        """The runner ended early (its client left or it failed): it no longer takes jobs."""
        with self._lock:
            self._running.discard(session)

    def waiting(self, session: str) -> list[QueuedJob]:
        with self._lock:
            return list(self._waiting.get(session, ()))

    def cancel(self, session: str, job_id: int) -> bool:
        """Remove one waiting job; False when it is no longer waiting (it started, or was removed)."""
        with self._lock:
            waiting = self._waiting.get(session)
            if not waiting:
                return False
            for job in waiting:
                if job.id == job_id:
                    waiting.remove(job)
                    return True
            return False

    def clear(self, session: str) -> int:
        """Remove every waiting job of the session (the running one goes on); returns how many."""
        with self._lock:
            waiting = self._waiting.pop(session, None)
            return len(waiting) if waiting else 0
