"""Fetching a catalogue model's weights file (presets/models.yaml: `hub_id` + `single_file`) from the Hugging Face
Hub into the models folder (GATOR_MODELS_DIR), in the background, with progress, cancel and resume.

One thread per download, one download per model at a time. `state(model_id)` / `states()` say at any time
how far each one is (bytes, total, speed, ETA) or why it stopped, as a sentence. A finished file is checked
(size, and the Hub's sha256 ETag for LFS files) and only then renamed to its final name, so a cancelled or
failed download never leaves a file under that name; the partial file stays in the models folder's hidden
`.cache/huggingface/download/` (the model scan skips hidden folders), named by the file's ETag, and the next
start continues it with an HTTP Range request. A dropped connection is resumed the same way, a few times,
within one start.

Why not `hf_hub_download(local_dir=...)`: in huggingface_hub 2.x it writes to a process-unique temporary
file and deletes it when the call fails or is interrupted, so nothing survives for a later call to resume,
and it reports progress once per 10 MiB chunk. This module uses huggingface_hub's own parts instead: the URL
(`hf_hub_url`, HF_ENDPOINT or `Settings.hf_endpoint`), the metadata call (`get_hf_file_metadata`: commit,
ETag, size, the CDN location), its HTTP session (proxies, HF_HUB_OFFLINE), its headers (HF_TOKEN, sent to
the Hub's own origin only) and its error types.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from .config import Settings
from .errors import GatorError, NO_SPACE, first_line, os_reason
from .registry import ModelSpec, find_model, load_catalogue
from .weights import locate_weights

logger = logging.getLogger(__name__)

# status values
MISSING, PARTIAL, INSTALLED = "missing", "partial", "installed"  # no download running
STARTING, DOWNLOADING, VERIFYING, CANCELLING = "starting", "downloading", "verifying", "cancelling"  # running
DONE, CANCELLED, FAILED = "done", "cancelled", "failed"  # how this run's last download of it ended
RUNNING = frozenset({STARTING, DOWNLOADING, VERIFYING, CANCELLING})

PARTIAL_DIR = Path(".cache") / "huggingface" / "download"  # under the models folder, as hf_hub_download keeps it
SPACE_MARGIN = 64 * 1024**2  # free space kept beyond the file
RETRIES = 5  # dropped connections resumed within one start (reset whenever bytes arrive)
SPEED_WINDOW_S = 5.0
SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(GatorError):
    """A download that cannot start; `str(err)` is the sentence."""


class _Cancelled(Exception):
    pass


def human_bytes(nbytes: Any) -> str:
    """1.2 GiB, 350.0 MiB, 12.0 KiB, 800 B; "?" for what is not a number."""
    try:
        n = float(nbytes)
    except (TypeError, ValueError):
        return "?"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def downloadable(spec: ModelSpec) -> bool:
    """Whether a catalogue entry names one Hub file this module can fetch."""
    return bool(spec.hub_id and spec.single_file and not spec.builtin)


@dataclass
class DownloadState:
    """Where one catalogue model's download stands (`status`: see the constants above)."""

    model_id: str
    label: str
    repo_id: str
    filename: str
    size_gb: float  # the catalogue's estimate, before the Hub says
    status: str = MISSING
    done_bytes: int = 0
    total_bytes: int | None = None
    speed_bps: float = 0.0
    eta_s: float | None = None
    resumed_from: int = 0  # bytes already on disk when this download started
    error: str = ""  # the sentence of a failed download
    destination: str = ""  # the final file (models folder / filename); "" without a models folder. Not "path":
    # Gradio takes any dict with a "path" key for a file (the /status API returns these states)
    installed_at: str = ""  # installed: "models folder", or where else its weights are ("diffusers folder", ...)

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def percent(self) -> float | None:
        if not self.total_bytes:
            return None
        return max(0.0, min(100.0, 100.0 * self.done_bytes / self.total_bytes))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "running": self.running, "percent": self.percent}


class _Job:
    """One download's thread, its cancel switch and its live numbers."""

    def __init__(self, state: DownloadState, previous: "_Job | None") -> None:
        self.state = state
        self.cancel = threading.Event()
        self.previous = previous  # a cancelled job still winding down: waited for before touching the file
        self.samples: deque[tuple[float, int]] = deque()
        self.thread: threading.Thread | None = None

    def progress(self, done: int) -> None:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW_S:
            self.samples.popleft()
        state = self.state
        state.done_bytes = done
        first_t, first_n = self.samples[0]
        if now - first_t >= 0.2:
            state.speed_bps = max(0.0, (done - first_n) / (now - first_t))
        if state.total_bytes and state.speed_bps > 0:
            state.eta_s = max(0.0, (state.total_bytes - done) / state.speed_bps)


class Downloads:
    """Downloads of catalogue weights into `settings.models_dir`; thread-safe."""

    def __init__(self, settings: Settings, on_finished: Callable[[str], None] | None = None, *,
                 timeout_s: float = 30.0, retry_wait_s: float = 1.0) -> None:
        self.settings = settings
        self.models_dir = Path(settings.models_dir) if settings.models_dir else None
        self.endpoint = (getattr(settings, "hf_endpoint", None) or "").rstrip("/") or None
        self.allowed = bool(settings.allow_downloads)
        self.on_finished = on_finished  # called (in the download's thread) before a finished one reads "done"
        self.timeout_s = timeout_s
        self.retry_wait_s = retry_wait_s
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    # -- what can be downloaded -----------------------------------------------------------------------------
    @staticmethod
    def catalogue() -> list[ModelSpec]:
        """The catalogue entries with one Hub file to fetch, best first."""
        return [spec for spec in load_catalogue() if downloadable(spec)]

    def allow(self) -> None:
        """Allow downloads for the rest of this run (as GATOR_ALLOW_DOWNLOADS=1 does from the start)."""
        if not self.allowed:
            logger.info("Downloads allowed for this run.")
        self.allowed = True

    def blocked(self) -> str:
        """Why no download can start now (a sentence), or ""."""
        if self.models_dir is None:
            return ("Downloads need a models folder: set GATOR_MODELS_DIR to a folder with room for the model "
                    "and start the app again.")
        if _offline():
            return "Downloads are off while HF_HUB_OFFLINE=1 is set."
        if not self.allowed:
            return ("Downloads are off: press \"Allow downloads\" on the System status tab, or start the app "
                    "with GATOR_ALLOW_DOWNLOADS=1.")
        return ""

    def spec(self, model_id: str) -> ModelSpec:
        """The downloadable catalogue entry `model_id` names (id or label); DownloadError otherwise."""
        spec = find_model(str(model_id or ""))
        if spec is None:
            names = ", ".join(f"{s.label} ({s.id})" for s in self.catalogue())
            raise DownloadError(f"Unknown model {str(model_id)!r}. Models that can be downloaded: {names}.")
        if spec.builtin:
            raise DownloadError(f"The {spec.label.lower()} is built in: it needs no download.")
        if not downloadable(spec):
            raise DownloadError(f"{spec.label} has no Hugging Face file to download here; install its files where "
                                f"its backend ({spec.backend}) finds them.")
        return spec

    # -- state ----------------------------------------------------------------------------------------------
    def state(self, model_id: str) -> DownloadState:
        """Where `model_id`'s download stands now (a copy)."""
        spec = self.spec(model_id)
        with self._lock:
            job = self._jobs.get(spec.id)
        if job is not None and job.state.running:
            return DownloadState(**asdict(job.state))
        state = DownloadState(spec.id, spec.label, spec.hub_id or "", spec.single_file or "", spec.size_gb)
        final = self._final(spec)
        state.destination = str(final) if final else ""
        if job is not None:
            state.total_bytes, state.error = job.state.total_bytes, job.state.error
        if final is not None and final.is_file():
            state.status = DONE if job is not None and job.state.status == DONE else INSTALLED
            state.done_bytes = state.total_bytes = final.stat().st_size
            state.error, state.installed_at = "", "models folder"
            return state
        elsewhere = self._installed_elsewhere(spec)
        if elsewhere:
            state.status, state.installed_at, state.error = INSTALLED, elsewhere, ""
            return state
        state.done_bytes = self._partial_bytes(spec)
        if job is not None and job.state.status in (CANCELLED, FAILED):
            state.status = job.state.status
        else:
            state.status = PARTIAL if state.done_bytes else MISSING
        return state

    def states(self) -> dict[str, dict[str, Any]]:
        """Every downloadable catalogue model's state, by model id, as plain dicts."""
        return {spec.id: self.state(spec.id).to_dict() for spec in self.catalogue()}

    def snapshot(self) -> dict[str, Any]:
        """What the status tab shows: allowed, the folder, offline (HF_HUB_OFFLINE), why nothing can start (a
        sentence, or ""), and every model's state."""
        return {"allowed": self.allowed, "folder": str(self.models_dir) if self.models_dir else None,
                "offline": _offline(), "blocked": self.blocked(), "models": self.states()}

    # -- start / cancel -------------------------------------------------------------------------------------
    def start(self, model_id: str) -> None:
        """Start downloading `model_id`'s file in the background (resuming a partial one). Nothing happens when
        it is already downloading or already in the models folder; DownloadError says why it cannot start."""
        spec = self.spec(model_id)
        blocked = self.blocked()
        if blocked:
            raise DownloadError(blocked)
        final = self._final(spec)
        assert final is not None  # blocked() checked the folder
        with self._lock:
            previous = self._jobs.get(spec.id)
            if previous is not None and previous.state.running and previous.state.status != CANCELLING:
                return
            if final.is_file() or self._installed_elsewhere(spec):
                return
            state = DownloadState(spec.id, spec.label, spec.hub_id or "", spec.single_file or "", spec.size_gb,
                                  status=STARTING, destination=str(final), done_bytes=self._partial_bytes(spec))
            job = _Job(state, previous if previous is not None and previous.state.running else None)
            self._jobs[spec.id] = job
            job.thread = threading.Thread(target=self._run, args=(spec, job), name=f"download-{spec.id}",
                                          daemon=True)
            job.thread.start()
        logger.info("Downloading %s (%s from %s) into the models folder.", spec.label, spec.single_file, spec.hub_id)

    def cancel(self, model_id: str) -> None:
        """Stop `model_id`'s download (within a moment); its partial file is kept for a later start."""
        spec = self.spec(model_id)
        with self._lock:
            job = self._jobs.get(spec.id)
            if job is None or not job.state.running:
                return
            job.cancel.set()
            job.state.status = CANCELLING
        logger.info("Cancelling the download of %s.", spec.label)

    def wait(self, model_id: str, timeout: float | None = None) -> DownloadState:
        """Block until `model_id`'s download (if any) has ended; its state then."""
        spec = self.spec(model_id)
        with self._lock:
            job = self._jobs.get(spec.id)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return self.state(spec.id)

    def shutdown(self) -> None:
        """Cancel every running download (their partial files stay)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()

    # -- the work -------------------------------------------------------------------------------------------
    def _final(self, spec: ModelSpec) -> Path | None:
        return self.models_dir / spec.single_file if self.models_dir and spec.single_file else None

    def _installed_elsewhere(self, spec: ModelSpec) -> str:
        """Where `spec`'s weights already are, other than its file in the models folder: its diffusers folder
        there, or the Hugging Face cache ("" when neither; no network)."""
        source = locate_weights(spec, self.models_dir, self.settings.tiny_dir, allow_downloads=False)
        kind = getattr(source, "kind", "")
        return {"folder": f"diffusers folder {spec.id}/", "hub_cache": "Hugging Face cache"}.get(kind, "")

    def _partial(self, spec: ModelSpec, etag: str) -> Path:
        tag = re.sub(r"[^A-Za-z0-9_-]", "_", etag)[:80] or "unknown"
        return self.models_dir / PARTIAL_DIR / f"{Path(spec.single_file).name}.{tag}.incomplete"

    def _partials(self, spec: ModelSpec) -> list[Path]:
        if self.models_dir is None or not spec.single_file:
            return []
        folder = self.models_dir / PARTIAL_DIR
        try:
            return [p for p in folder.glob(f"{glob_escape(Path(spec.single_file).name)}.*.incomplete") if p.is_file()]
        except OSError:
            return []

    def _partial_bytes(self, spec: ModelSpec) -> int:
        sizes = []
        for path in self._partials(spec):
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                pass
        return max(sizes, default=0)

    def _run(self, spec: ModelSpec, job: _Job) -> None:
        state = job.state
        try:
            if job.previous is not None and job.previous.thread is not None:
                job.previous.thread.join()  # a cancelled download of the same file winds down first
            job.previous = None
            self._fetch(spec, job)
            if self.on_finished is not None:
                try:
                    self.on_finished(spec.id)
                except Exception:  # the file is there; the next rescan lists it
                    logger.exception("Rescanning after the download of %s failed", spec.label)
            state.status, state.speed_bps, state.eta_s = DONE, 0.0, 0.0
            logger.info("Downloaded %s (%s).", spec.label, human_bytes(state.done_bytes))
        except _Cancelled:
            state.status, state.speed_bps, state.eta_s = CANCELLED, 0.0, None
            logger.info("Download of %s cancelled at %s.", spec.label, human_bytes(state.done_bytes))
        except Exception as err:  # every failure ends as a sentence; the details go to the log
            state.error = self._sentence(spec, state, err)
            state.status, state.speed_bps, state.eta_s = FAILED, 0.0, None
            logger.warning("Download of %s failed: %s (%s: %s)", spec.label, state.error, type(err).__name__,
                           first_line(err))

    def _fetch(self, spec: ModelSpec, job: _Job) -> None:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        state, final = job.state, self._final(spec)
        (self.models_dir / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
        url = hf_hub_url(spec.hub_id, spec.single_file, endpoint=self.endpoint)
        meta = get_hf_file_metadata(url, timeout=self.timeout_s, endpoint=self.endpoint)
        self._check_cancel(job)
        etag, size = meta.etag or "", meta.size
        partial = self._partial(spec, etag)
        for stale in self._partials(spec):  # an older version of the file: it cannot be continued
            if stale != partial:
                stale.unlink(missing_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        if size is not None and have > size:
            partial.unlink()
            have = 0
        state.total_bytes, state.resumed_from = size, have
        self._phase(job, DOWNLOADING)
        job.progress(have)
        if size is not None:
            free = shutil.disk_usage(self.models_dir).free
            if size - have + SPACE_MARGIN > free:
                raise DownloadError(
                    f"Not enough free space in the models folder for {spec.label}: it needs {human_bytes(size - have)}"
                    f" more and {human_bytes(free)} are free. Free some space, or set GATOR_MODELS_DIR to a "
                    "bigger disk.")
        if logger.isEnabledFor(logging.INFO) and have:
            logger.info("Resuming %s from %s of %s.", spec.single_file, human_bytes(have), human_bytes(size))
        have = self._transfer(job, meta.location or url, partial, have, size)
        self._phase(job, VERIFYING)
        if size is not None and have != size:
            raise DownloadError(f"The Hub sent {human_bytes(have)} of {spec.single_file} instead of "
                                f"{human_bytes(size)}; press Download to try again.")
        if SHA256.fullmatch(etag) and _sha256(partial, job) != etag:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"The downloaded {spec.single_file} did not match the Hub's checksum, so it was "
                                "deleted; press Download to fetch it again.")
        self._check_cancel(job)
        os.replace(partial, final)

    def _transfer(self, job: _Job, url: str, partial: Path, have: int, size: int | None) -> int:
        """Stream `url` into `partial` from byte `have`; a dropped connection is resumed RETRIES times (counted
        afresh whenever bytes arrive). The bytes on disk at the end."""
        import httpx2

        transient = (httpx2.TransportError,)  # connect/read errors, timeouts, a connection closed mid-body
        tries = RETRIES
        while True:
            self._check_cancel(job)
            if size is not None and have >= size:
                return have
            before = have
            try:
                have = self._stream_once(job, url, partial, have, size)
                if size is None or have >= size:
                    return have
                raise httpx2.RemoteProtocolError("the body ended early")
            except transient as err:
                self._check_cancel(job)
                have = partial.stat().st_size if partial.exists() else 0  # what reached the disk
                job.progress(have)
                tries = RETRIES if have > before else tries - 1
                if tries < 0:
                    raise
                logger.warning("Download of %s interrupted at %s (%s); resuming.", partial.name, human_bytes(have),
                               type(err).__name__)
                if job.cancel.wait(self.retry_wait_s):
                    raise _Cancelled() from None

    def _stream_once(self, job: _Job, url: str, partial: Path, have: int, size: int | None) -> int:
        import httpx2
        from huggingface_hub import get_session
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

        headers: dict[str, str] = {"Accept-Encoding": "identity"}
        if _origin(url) == _origin(self.endpoint or _default_endpoint()):
            headers.update(build_hf_headers())  # HF_TOKEN and the user agent; never sent to a CDN
        if have:
            headers["Range"] = f"bytes={have}-"
        timeout = httpx2.Timeout(self.timeout_s)
        with get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 416 and size is not None and have >= size:
                return have  # everything is on disk already
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            if have and response.status_code != 206:  # the server ignored the Range: start again
                have = 0
                job.state.resumed_from = 0
            overrun = False
            with partial.open("r+b" if have else "wb") as handle:
                handle.seek(have)
                handle.truncate()
                for chunk in response.iter_bytes():
                    if job.cancel.is_set():
                        raise _Cancelled()
                    if size is not None and have + len(chunk) > size:  # never more than was announced on disk
                        overrun = True
                        break
                    handle.write(chunk)
                    have += len(chunk)
                    job.progress(have)
        if overrun:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"The server sent more than the {human_bytes(size or 0)} it announced, so the "
                                "partial file was deleted; press Download to try again.")
        return have

    @staticmethod
    def _phase(job: _Job, status: str) -> None:
        if not job.cancel.is_set():  # "cancelling" stays until the thread ends
            job.state.status = status

    @staticmethod
    def _check_cancel(job: _Job) -> None:
        if job.cancel.is_set():
            raise _Cancelled()

    def _sentence(self, spec: ModelSpec, state: DownloadState, err: BaseException) -> str:
        """Why the download of `spec` stopped, for the user (no server path); how to go on."""
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled,
                                            RemoteEntryNotFoundError, RepositoryNotFoundError)
        import httpx2

        resume = (f" Press Download to resume from {human_bytes(state.done_bytes)}."
                  if state.done_bytes else " Press Download to try again.")
        host = urlparse(self.endpoint or _default_endpoint()).netloc or "the Hugging Face Hub"
        if isinstance(err, DownloadError):
            return str(err)
        if isinstance(err, OfflineModeIsEnabled):
            return "Downloads are off while HF_HUB_OFFLINE=1 is set."
        if isinstance(err, GatedRepoError):
            return (f"{spec.hub_id} is gated on the Hugging Face Hub: accept its licence on its page, then set "
                    "HF_TOKEN to a token of that account and start the app again.")
        if isinstance(err, RepositoryNotFoundError):
            return (f"The Hugging Face Hub ({host}) has no repository {spec.hub_id}, or it is private or gated: set "
                    "HF_TOKEN to a token with access.")
        if isinstance(err, RemoteEntryNotFoundError):
            return f"The Hugging Face Hub ({host}) has no file {spec.single_file} in {spec.hub_id}."
        if isinstance(err, HfHubHTTPError):
            code = err.response.status_code if err.response is not None else "an error"
            return f"The Hugging Face Hub ({host}) answered HTTP {code} for {spec.single_file}.{resume}"
        if isinstance(err, httpx2.TimeoutException):
            return f"The Hugging Face Hub ({host}) stopped answering (timed out).{resume}"
        if isinstance(err, httpx2.ConnectError):
            return (f"Could not reach the Hugging Face Hub ({host}): no network, or HF_ENDPOINT is wrong."
                    f"{resume}")
        if isinstance(err, httpx2.TransportError):
            return f"The connection to the Hugging Face Hub ({host}) was lost ({type(err).__name__}).{resume}"
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            return (f"No space left in the models folder after {human_bytes(state.done_bytes)} of "
                    f"{human_bytes(state.total_bytes)}. Free some space, then press Download to resume.")
        if isinstance(err, OSError):
            return (f"Could not write to the models folder ({os_reason(err)}). Check that GATOR_MODELS_DIR "
                    "exists and is writable.")
        return f"The download of {spec.label} failed ({type(err).__name__}); the server log has the details."


def _sha256(path: Path, job: _Job) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            if job.cancel.is_set():
                raise _Cancelled()
            digest.update(block)
    return digest.hexdigest()


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except Exception:  # pragma: no cover - an old huggingface_hub
        return False


def _default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urlparse(url)
    return parsed.scheme, (parsed.hostname or "").lower(), parsed.port


def glob_escape(name: str) -> str:
    """`name` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
