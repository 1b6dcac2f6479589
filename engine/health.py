"""Background health monitor for a pool of ComfyUI servers.

Each server is polled (GET /system_stats, then GET /prompt for the queue and, when it comes up and
every `models_refresh_s`, its loaders' /object_info for the installed models) from a daemon thread
with a plain synchronous HTTP client, so it works whichever asyncio loop the app runs. Requests
never wait on the network for health: they read `snapshot()`.

Hysteresis: a server that is up goes down after `down_after` consecutive failed polls; a server that
is down (or not yet known) goes up after `up_after` consecutive good polls. A server whose state is
still unknown is marked down by its first failed poll, so startup does not wait.

Every answer is checked against its declared shape (engine/comfyui_answers.py): a /system_stats of the
wrong shape is a failed poll whose `last_error` says what was wrong; a wrong /prompt (queue) or
/object_info (models) answer is logged and leaves that part unknown.

So that hysteresis costs no detection time, a first failure of an up server is confirmed at once by
another poll, and a poll still unanswered after half the timeout is hedged by a second request: a
hung server is then seen down within one interval plus one timeout, while one lost request never
flips the state.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import httpx

from .comfyui import MODEL_INPUTS, InstalledModels, installed_models_from_object_info
from .comfyui_answers import ObjectInfo, PromptQueueInfo, SystemStats, UnexpectedAnswer, check, parse_json

log = logging.getLogger(__name__)

ANSWER_BYTES = 64 * 1024 * 1024  # more than any status, queue or model-list answer of a real ComfyUI
MODEL_LIST_S = 10.0  # the longest a model list (/object_info, /embeddings) may take, whole: longer than a status

Callback = Callable[[str, "ServerState", "ServerState"], None]


@dataclass
class ServerState:
    """What the monitor knows about one server; `snapshot()` hands out copies."""

    url: str
    up: bool | None = None            # None until the first poll
    since: float = field(default_factory=time.time)  # when `up` last changed (epoch seconds)
    latency_ms: float | None = None   # of the last good /system_stats
    device: str | None = None
    vram_total: int | None = None
    vram_free: int | None = None
    comfyui_version: str | None = None
    queue_remaining: int | None = None
    models: InstalledModels | None = None
    models_checked_at: float | None = None  # monotonic time of the last /object_info refresh
    last_error: str | None = None     # why the last failed poll failed
    last_poll: float | None = None    # epoch seconds
    failures: int = 0                 # consecutive failed polls
    successes: int = 0                # consecutive good polls

    def copy(self) -> "ServerState":
        return replace(self, models=self.models.copy() if self.models else None)


@dataclass
class _Poll:
    ok: bool
    reason: str
    failures: int = 1  # how many failed polls this one counts as (a hedged poll whose both requests failed: 2)
    latency_ms: float | None = None
    stats: SystemStats | None = None
    queue_remaining: int | None = None
    models: InstalledModels | None = None


class HealthMonitor:
    """Polls every server in `urls` and keeps an up/down state per server."""

    def __init__(self, urls: Iterable[str], interval_s: float = 2.0, timeout_s: float = 2.0, down_after: int = 2,
                 up_after: int = 1, models_refresh_s: float = 30.0, history_size: int = 200) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.down_after = max(1, int(down_after))
        self.up_after = max(1, int(up_after))
        self.models_refresh_s = float(models_refresh_s)
        self._states = {u: ServerState(u) for u in self.urls}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._poll_locks = {u: threading.Lock() for u in self.urls}
        self._subscribers: list[Callback] = []
        self._history: deque[tuple[float, str, bool, str]] = deque(maxlen=history_size)
        self._answered_since: dict[str, float] = {}  # per server: when its latest good poll began (monotonic)
        self._failed_at: dict[str, float] = {}  # per server: when the latest failure reported from a job was seen
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # One HTTP client per server, reused across polls (building one costs ~15 ms of CPU for its SSL
        # context); keep-alive is off so every poll opens a fresh connection and sees a dead server at once.
        self._hedges = ThreadPoolExecutor(max_workers=2 * max(4, len(self.urls)), thread_name_prefix="health")
        self._clients = {u: self._new_client() for u in self.urls}
        self._started = False  # start() was called and stop() not since

    def _new_client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_s, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "HealthMonitor":
        """A monitor for settings.comfyui_urls with the settings' interval and timeout."""
        return cls(settings.comfyui_urls, interval_s=settings.health_interval_s,
                   timeout_s=settings.health_timeout_s, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "HealthMonitor":
        """Start one daemon polling thread per server (no-op when running)."""
        if self.running:
            return self
        self._stop.clear()
        self._started = True  # servers added from now on get a thread too, even when none was configured
        self._threads = [threading.Thread(target=self._loop, args=(u,), name=f"comfyui-health {u}", daemon=True)
                         for u in self.urls]
        for t in self._threads:
            t.start()
        return self

    def add_server(self, url: str) -> None:
        """Watch one more server from now on (a ComfyUI the app started); polled at once when running."""
        url = url.rstrip("/")
        with self._lock:
            if url in self._states:
                return
            self.urls.append(url)
            self._states[url] = ServerState(url)
            self._poll_locks[url] = threading.Lock()
            self._clients[url] = self._new_client()
            start = self._started and not self._stop.is_set()
        if start:
            thread = threading.Thread(target=self._loop, args=(url,), name=f"comfyui-health {url}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def remove_server(self, url: str) -> None:
        """Stop watching `url` (its polling thread ends after its poll in flight)."""
        url = url.rstrip("/")
        with self._lock:
            if url not in self._states:
                return
            self.urls.remove(url)
            del self._states[url]
            self._answered_since.pop(url, None)
            self._failed_at.pop(url, None)
            client = self._clients.pop(url)
        client.close()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the threads to end and wait for them (each ends after at most its poll in flight)."""
        self._stop.set()
        self._started = False
        for t in self._threads:
            t.join(timeout if timeout is not None else self.timeout_s * 6 + 1)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def __enter__(self) -> "HealthMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> dict[str, ServerState]:
        """Copies of every server's state, keyed by URL, in configured order."""
        with self._lock:
            return {u: s.copy() for u, s in self._states.items()}

    def state(self, url: str) -> ServerState:
        with self._lock:
            return self._states[url.rstrip("/")].copy()

    def up_servers(self) -> list[str]:
        """URLs currently considered up, in configured order."""
        with self._lock:
            return [u for u, s in self._states.items() if s.up]

    @property
    def history(self) -> list[tuple[float, str, bool, str]]:
        """Up/down changes as (epoch time, url, up, reason), oldest first, bounded."""
        with self._lock:
            return list(self._history)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call `callback(url, old_state, new_state)` (copies) on every up/down change; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def wait_for(self, url: str, up: bool, timeout: float) -> bool:
        """Block until `url` is up (or down); False on timeout."""
        url = url.rstrip("/")
        with self._changed:
            return self._changed.wait_for(lambda: self._states[url].up is up, timeout)

    # ------------------------------------------------------------------ polling
    def poll_now(self) -> dict[str, ServerState]:
        """Poll every server once, concurrently, in the calling thread's time; returns the snapshot."""
        urls = list(self.urls)
        if len(urls) == 1:
            self._poll_and_record(urls[0])
        elif urls:
            with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="comfyui-poll") as pool:
                list(pool.map(self._poll_and_record, urls))
        return self.snapshot()

    def refresh_models(self, url: str) -> None:
        """Make the next poll of `url` re-read its installed models."""
        with self._lock:
            self._states[url.rstrip("/")].models_checked_at = None

    def report_failure(self, url: str, reason: str, seen_at: float | None = None) -> None:
        """Count a failure seen elsewhere (e.g. a job's socket dropped) like a failed poll; one seen at
        `seen_at` (time.monotonic()) before a poll that began later and was answered is old news: the
        server is back, and it does not count. Likewise a poll answered after it but begun before it is old news."""
        url = url.rstrip("/")
        if url not in self._states:
            return
        if seen_at is not None and self._answered_since.get(url, float("-inf")) > seen_at:
            log.info("ComfyUI %s: a job failed (%s), but the server has answered since; not counted", url, reason)
            return
        self._failed_at[url] = time.monotonic() if seen_at is None else seen_at
        self._record(url, _Poll(ok=False, reason=reason))

    def _loop(self, url: str) -> None:
        while not self._stop.is_set() and url in self._states:
            started = time.monotonic()
            try:
                self._poll_and_record(url)
            except Exception:  # a bug here must not kill monitoring
                log.exception("health poll of %s failed unexpectedly", url)
            with self._lock:
                st = self._states.get(url)
                if st is None:  # removed while it was polled
                    return
                confirming = st.up is True and 0 < st.failures < self.down_after
            if confirming:  # a first failed poll of an up server is confirmed at once, not an interval later
                continue
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _poll_and_record(self, url: str) -> None:
        with self._poll_locks[url]:
            with self._lock:
                st = self._states.get(url)
                if st is None:
                    return
                stale = (st.up is not True or st.models is None or st.models_checked_at is None
                         or time.monotonic() - st.models_checked_at >= self.models_refresh_s)
            began = time.monotonic()
            poll = self._poll(url, want_models=stale)
            if poll.ok and self._failed_at.get(url, float("-inf")) > began:  # a job saw it fail since it was asked
                log.info("ComfyUI %s answered a poll begun before a job saw it fail; not counted", url)
                return
            if poll.ok:
                self._answered_since[url] = began
            self._record(url, poll)

    def _system_stats(self, url: str) -> httpx.Response:
        """GET /system_stats; unanswered after half the timeout, a second request races the first.

        Raises the first request's error when both fail, with `hedged_failure` set on it.
        """
        client = self._clients[url]
        first = self._hedges.submit(whole_answer, client, url + "/system_stats", self.timeout_s)
        try:
            return first.result(timeout=self.timeout_s / 2)
        except FutureTimeout:
            pass
        second = self._hedges.submit(whole_answer, client, url + "/system_stats", self.timeout_s / 2)
        errors: list[BaseException] = []
        for done in as_completed([first, second]):
            try:
                return done.result()
            except httpx.HTTPError as exc:
                errors.append(exc)
        error = next((e for e in errors if isinstance(e, httpx.TimeoutException)), errors[0])
        error.hedged_failure = True  # type: ignore[attr-defined]
        raise error

    def _poll(self, url: str, want_models: bool) -> _Poll:
        client = self._clients[url]
        t0 = time.perf_counter()
        try:
            resp = self._system_stats(url)
            resp.raise_for_status()
            stats = _checked(SystemStats, resp, url, "/system_stats")
        except UnexpectedAnswer as exc:
            return _Poll(False, str(exc))
        except httpx.TimeoutException as exc:
            return _Poll(False, f"no answer within {self.timeout_s:g} s",
                         failures=self.down_after if getattr(exc, "hedged_failure", False) else 1)
        except httpx.ConnectError as exc:
            text = str(exc).lower()
            return _Poll(False, "connection refused" if "refused" in text else f"cannot connect ({exc})")
        except httpx.HTTPStatusError as exc:
            return _Poll(False, f"HTTP {exc.response.status_code} from /system_stats")
        except (httpx.HTTPError, ValueError) as exc:
            return _Poll(False, f"bad answer ({exc.__class__.__name__}: {exc})")
        latency = (time.perf_counter() - t0) * 1000
        poll = _Poll(True, f"answered in {latency:.0f} ms", latency_ms=latency, stats=stats)
        try:
            resp = whole_answer(client, url + "/prompt", self.timeout_s)
            resp.raise_for_status()
            poll.queue_remaining = _checked(PromptQueueInfo, resp, url, "/prompt").exec_info.queue_remaining
        except (UnexpectedAnswer, httpx.HTTPError) as exc:  # every poll: not worth a warning each time
            log.debug("queue of %s unknown: %s", url, exc)
        if want_models:
            try:
                infos: dict[str, Any] = {}
                for node_class in MODEL_INPUTS:
                    r = whole_answer(client, f"{url}/object_info/{node_class}", max(self.timeout_s, MODEL_LIST_S))
                    r.raise_for_status()
                    infos.update(_checked(ObjectInfo, r, url, f"/object_info/{node_class}", raw=True))
                poll.models = installed_models_from_object_info(infos)
                poll.models.embeddings = _embeddings(client, url, max(self.timeout_s, MODEL_LIST_S))
            except UnexpectedAnswer as exc:
                log.warning("could not read installed models of %s: %s", url, exc)
            except httpx.HTTPError as exc:
                log.warning("could not read installed models of %s: %r", url, exc)
        return poll

    def _record(self, url: str, poll: _Poll) -> None:
        notify: list[tuple[Callback, ServerState, ServerState]] = []
        with self._changed:
            st = self._states.get(url)
            if st is None:  # removed while it was polled
                return
            old = st.copy()
            st.last_poll = time.time()
            if poll.ok:
                st.failures, st.successes = 0, st.successes + 1
                st.latency_ms = poll.latency_ms
                st.last_error = None
                if poll.stats is not None:
                    dev = poll.stats.devices[0] if poll.stats.devices else None
                    st.device = dev.name if dev else None
                    st.vram_total, st.vram_free = (dev.vram_total, dev.vram_free) if dev else (None, None)
                    st.comfyui_version = poll.stats.system.comfyui_version
                if poll.queue_remaining is not None:
                    st.queue_remaining = poll.queue_remaining
                if poll.models is not None:
                    st.models, st.models_checked_at = poll.models, time.monotonic()
                flip = st.up is not True and st.successes >= self.up_after
            else:
                st.successes, st.failures = 0, st.failures + (0 if poll.ok else poll.failures)
                st.last_error = poll.reason
                flip = st.up is None or (st.up and st.failures >= self.down_after)
            if flip:
                st.up = poll.ok
                st.since = time.time()
                self._history.append((st.since, url, poll.ok, poll.reason))
                log.info("ComfyUI %s is %s (%s)", url, "up" if poll.ok else "down", poll.reason)
                new = st.copy()
                notify = [(cb, old, new) for cb in self._subscribers]
                self._changed.notify_all()
        for cb, o, n in notify:
            try:
                cb(url, o, n)
            except Exception:
                log.exception("health subscriber %r failed", cb)


def whole_answer(client: httpx.Client, url: str, within_s: float) -> httpx.Response:
    """GET `url`, its whole answer within `within_s` seconds (httpx's own timeout is per read: a server that trickles
    a byte at a time would hold a poll for ever); httpx.ReadTimeout after that, or past ANSWER_BYTES."""
    end = time.monotonic() + within_s
    with client.stream("GET", url) as response:  # each read within the client's own timeout, as a plain GET
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if time.monotonic() > end or len(body) > ANSWER_BYTES:
                raise httpx.ReadTimeout(f"no whole answer from {url} within {within_s:g} s", request=response.request)
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding",
                                                                                      "content-length",
                                                                                      "transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)


def _embeddings(client: httpx.Client, url: str, within_s: float) -> list[str]:
    """GET /embeddings: the server's embedding names (none when it has no such route or answers oddly)."""
    try:
        resp = whole_answer(client, f"{url}/embeddings", within_s)
        resp.raise_for_status()
        return list(_checked(list[str], resp, url, "/embeddings"))
    except (UnexpectedAnswer, httpx.HTTPError) as exc:
        log.info("no embeddings list from %s: %s", url, exc)
        return []


def _checked(shape: Any, resp: httpx.Response, url: str, path: str, raw: bool = False) -> Any:
    """The JSON body of `resp` as `shape` (or as parsed, once checked, with `raw`), or UnexpectedAnswer."""
    what = f"answer to GET {path}"
    data = parse_json(resp.content, server=url, what=what)
    checked = check(shape, data, server=url, what=what)
    return data if raw else checked
