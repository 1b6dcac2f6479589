"""The jobs each client has in flight: how many it may have, the Stop and Skip switches of each, and whether its
client is still there to receive the result.

A client is a browser session or API client (Gradio's session), a login, and an IP address; each has a
limit on jobs running or waiting, so one client cannot fill the queue. A job whose client went away (its
event stream was dropped, or never read) is cancelled through the engine's cancel switch.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

logger = logging.getLogger(__name__)


IMAGE_JOB, VIDEO_JOB, API_JOB = "image", "video", "api"  # a job's kind: whose Stop (and Skip) reaches it
RENDER_CONCURRENCY = "generate_video"  # the queue the Video tab's Render and /generate_video share
RENDERS_AT_ONCE = 2  # renders that run at the same time (all sessions); a further one waits for a slot


class TooManyJobs(Exception):
    """The client already has as many jobs as it may; `str(err)` is the sentence to show."""


@dataclass(frozen=True)
class JobLimits:
    """Jobs running or waiting per client (0 turns a limit off), and how long a result may go unread."""

    per_session: int = 2  # GATOR_MAX_JOBS_PER_SESSION: a browser tab or API client
    per_login: int = 4  # GATOR_MAX_JOBS_PER_LOGIN: with --auth
    per_ip: int = 8  # GATOR_MAX_JOBS_PER_IP
    unread_s: float = 30.0  # GATOR_UNREAD_STREAM_S: a job whose messages nobody reads this long is cancelled
    waiting_per_session: int = 8  # GATOR_MAX_WAITING_PER_SESSION: the Image tab's queue (at least 1)

    @classmethod
    def from_env(cls) -> "JobLimits":
        env = os.environ
        return cls(per_session=int(env.get("GATOR_MAX_JOBS_PER_SESSION", cls.per_session)),
                   per_login=int(env.get("GATOR_MAX_JOBS_PER_LOGIN", cls.per_login)),
                   per_ip=int(env.get("GATOR_MAX_JOBS_PER_IP", cls.per_ip)),
                   unread_s=float(env.get("GATOR_UNREAD_STREAM_S", cls.unread_s)),
                   waiting_per_session=max(1, int(env.get("GATOR_MAX_WAITING_PER_SESSION",
                                                          cls.waiting_per_session))))


def client_keys(request: Any) -> dict[str, str]:
    """{"session": ..., "login": ..., "ip": ...} for a Gradio request (missing parts left out)."""
    keys: dict[str, str] = {}
    if request is None:
        return keys
    session = getattr(request, "session_hash", None)
    if session:
        keys["session"] = str(session)
    username = getattr(request, "username", None)
    if username:
        keys["login"] = str(username)
    try:
        host = request.client.host
    except AttributeError:
        host = None
    if host:
        keys["ip"] = str(host)
    return keys


class Jobs:
    """Counts each client's jobs, holds their cancel switches, and cancels a job whose client is gone."""

    WATCH_S = 0.2  # how often a running job looks whether its client is still there

    def __init__(self, limits: JobLimits | None = None) -> None:
        self.limits = limits or JobLimits.from_env()
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._skips: dict[asyncio.Event, asyncio.Event] = {}  # each running job's Skip switch, by its cancel switch
        self._kinds: dict[asyncio.Event, str] = {}  # each running job's kind (IMAGE_JOB, VIDEO_JOB, API_JOB)
        self._demo: Any = None  # the Gradio app whose queue is watched, once attached

    def attach(self, demo: Any) -> None:
        """Watch `demo`'s event streams, so a job whose client left is cancelled."""
        self._demo = demo

    @asynccontextmanager
    async def job(self, request: Any, kind: str = API_JOB) -> AsyncIterator[asyncio.Event]:
        """A job for the client of `request`: its cancel switch (its tab's Stop and a vanished client set it).
        `kind` ("image", "video", "api") is what a tab's Stop and Skip look at: the Image tab's Stop leaves the
        same browser tab's video render alone.

        Raises TooManyJobs when the client is at one of its limits.
        """
        keys = client_keys(request)
        limits = {"session": self.limits.per_session, "login": self.limits.per_login, "ip": self.limits.per_ip}
        counted = list(keys.items())  # (who, value): "session", "login", "ip"
        with self._lock:
            for who, value in counted:
                if limits[who] and self._counts[(who, value)] >= limits[who]:
                    raise TooManyJobs(_too_many(who, limits[who]))
            self._counts.update(counted)
        cancel = asyncio.Event()
        session = keys.get("session", "")
        with self._lock:
            self._events[session].add(cancel)
            self._skips[cancel] = asyncio.Event()
            self._kinds[cancel] = kind
        watcher = asyncio.create_task(self._watch(session, cancel)) if self._demo is not None and session else None
        try:
            yield cancel
        finally:
            if watcher is not None:
                watcher.cancel()
            with self._lock:
                self._counts.subtract(counted)
                self._counts += Counter()  # drop zero counts
                self._skips.pop(cancel, None)
                self._kinds.pop(cancel, None)
                events = self._events.get(session)
                if events is not None:
                    events.discard(cancel)
                    if not events:
                        del self._events[session]

    def cancel(self, session: str | None, kind: str | None = None) -> int:
        """Set the cancel switch of every job of `session` (of that `kind` only, when given: a tab's Stop button);
        returns how many jobs were asked to stop."""
        with self._lock:
            events = [event for event in self._events.get(session or "", ())
                      if kind is None or self._kinds.get(event) == kind]
        for event in events:
            event.set()
        return len(events)

    def skip_switch(self, cancel: asyncio.Event) -> asyncio.Event | None:
        """The Skip switch of the running job whose cancel switch is `cancel` (None once it ended)."""
        with self._lock:
            return self._skips.get(cancel)

    def skip(self, session: str | None, kind: str = IMAGE_JOB) -> int:
        """Set the Skip switch of every running job of `session` of that `kind` (the Image tab's Skip: the image
        being made ends, the batch goes on); returns how many jobs were asked to skip."""
        with self._lock:
            skips = [self._skips[cancel] for cancel in self._events.get(session or "", ())
                     if cancel in self._skips and self._kinds.get(cancel) == kind]
        for skip in skips:
            skip.set()
        return len(skips)

    def running(self, session: str | None) -> int:
        with self._lock:
            return len(self._events.get(session or "", ()))

    async def _watch(self, session: str, cancel: asyncio.Event) -> None:
        unread_since: float | None = None
        while not cancel.is_set():
            await asyncio.sleep(self.WATCH_S)
            state = self._stream_state(session)
            now = time.monotonic()
            if state == "unread":
                unread_since = unread_since or now
                if now - unread_since < self.limits.unread_s:
                    continue
            elif state != "gone":
                unread_since = None
                continue
            logger.info("A client left (%s); its job is cancelled.",
                        "its stream was dropped" if state == "gone" else "nobody reads its stream")
            cancel.set()

    def _stream_state(self, session: str) -> str:
        """"gone" when the session's event stream was dropped, "unread" while its messages pile up unread,
        else "ok". Reads Gradio's queue (tests/ui/test_hardening.py pins this against the running app)."""
        queue = getattr(self._demo, "_queue", None)  # read each time: demo.queue() makes a new one
        try:
            messages = queue.pending_messages_per_session.get(session)
            if messages is None:
                return "gone"
            for job_set in queue.active_jobs:
                for event in job_set or ():
                    if event.session_hash == session and not event.alive:
                        return "gone"
            return "unread" if messages.qsize() > 0 else "ok"
        except AttributeError:  # another Gradio: watch nothing rather than cancel wrongly
            return "ok"


def _too_many(kind: str, limit: int) -> str:
    who = {"session": "This session", "login": "Your login", "ip": "Your address"}[kind]
    return (f"{who} already has {limit} job{'s' if limit != 1 else ''} running or waiting; wait for one to finish "
            "(or press Stop) before starting another.")
