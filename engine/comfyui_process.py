"""A ComfyUI the app starts itself from COMFYUI_DIR: child processes it supervises, and only those.

When no server answers at COMFYUI_API_URL, each instance runs `<python> main.py --listen 127.0.0.1 --port <free port>`
(`--cpu` without a CUDA GPU; with several GPUs one instance per GPU, CUDA_VISIBLE_DEVICES set to it) in the install
folder, with the folder's own Python (COMFYUI_PYTHON, else venv/ or .venv/ there), in a new process group, its output
appended to a log file in the user's cache. Once GET /system_stats answers it joins the ComfyUI pool. A crash (the
process ends without being asked) restarts it after 1, 2, 4 ... s (capped); a child that dies because its port was
taken meanwhile starts again at once on another port. Stopping sends SIGTERM to the whole process group, SIGKILL
after a grace period, and reaps the child; atexit does the same at interpreter exit. Nothing here ever signals a
process it did not start.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx

from .errors import GatorError, os_reason
from .health import whole_answer

log = logging.getLogger(__name__)

STARTING, UP, RESTARTING, STOPPED, NOT_STARTED = "starting", "up", "restarting", "stopped", "not started"
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 60.0
STEADY_S = 60.0  # up this long, the next crash restarts after BACKOFF_START_S again
READY_TIMEOUT_S = 600.0  # a real ComfyUI on the CPU may take minutes to import its nodes
GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
LOG_LINES = 30  # last lines of the log kept for the status tab
LOG_ROTATE_BYTES = 5 * 1024 * 1024
PORT_TRIES = 5  # ports tried at once when the child says its port is taken
PORT_TAKEN = re.compile(r"address already in use|errno 98|eaddrinuse", re.IGNORECASE)

OnChange = Callable[[str, str], None]  # a row of the switch log


class ManagedComfyUIError(GatorError):
    """The managed ComfyUI cannot be started (a sentence saying why)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_python(folder: Path, explicit: Path | None = None) -> Path | None:
    """COMFYUI_PYTHON, else the install's venv/bin/python or .venv/bin/python; None when there is none."""
    if explicit:
        return Path(explicit)
    for venv in ("venv", ".venv"):
        for name in ("bin/python", "Scripts/python.exe"):
            candidate = Path(folder) / venv / name
            if candidate.exists():
                return candidate
    return None


def answering(urls: Iterable[str], timeout_s: float = 2.0) -> str | None:
    """The first of `urls` whose GET /system_stats answers 200, else None."""
    for url in urls:
        try:
            with httpx.Client(timeout=timeout_s, trust_env=False) as client:
                if whole_answer(client, url.rstrip("/") + "/system_stats", timeout_s).status_code == 200:
                    return url
        except httpx.HTTPError:
            continue
    return None


def read_tail(path: Path, lines: int = LOG_LINES, since: int = 0) -> list[str]:
    """The last `lines` lines of the file at `path` from byte `since` on (none when it is missing)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(since, size - 64 * 1024)
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


@dataclass(frozen=True)
class Timing:
    """How the supervisor waits: backoff, readiness, grace period, poll interval (tests shorten them)."""

    backoff_start_s: float = BACKOFF_START_S
    backoff_cap_s: float = BACKOFF_CAP_S
    steady_s: float = STEADY_S
    ready_timeout_s: float = READY_TIMEOUT_S
    grace_s: float = GRACE_S
    poll_s: float = 0.25


class ManagedInstance:
    """One ComfyUI child process (on one GPU, or the CPU) and the thread that keeps it running."""

    def __init__(self, folder: Path, python: Path, *, gpu: str | None, cpu: bool, log_path: Path,
                 on_change: OnChange, join_pool: Callable[[str], None], leave_pool: Callable[[str], None],
                 ports: Callable[[], int] = free_port, timing: Timing = Timing()) -> None:
        self.folder, self.python, self.gpu, self.cpu = Path(folder), Path(python), gpu, cpu
        self.log_path = Path(log_path)
        self.name = f"GPU {gpu}" if gpu is not None else ("CPU" if cpu else "GPU")
        self._on_change, self._join_pool, self._leave_pool = on_change, join_pool, leave_pool
        self._ports, self.timing = ports, timing
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._log_start = 0
        self.state, self.port, self.url, self.pid = STOPPED, None, None, None
        self.message, self.crashes, self.restart_at, self.exit_code = "", 0, None, None

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start the child and keep it running (no-op while it is)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self.crashes, self.message = 0, ""
            self._thread = threading.Thread(target=self._supervise, name=f"managed-comfyui {self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the child (SIGTERM to its process group, SIGKILL after the grace period) and its supervisor."""
        with self._lock:
            self._stopping.set()
            thread, pid = self._thread, self.pid
        self._end_process()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timing.grace_s + 5)
        with self._lock:
            self._thread = None
            self.state, self.restart_at, self.pid = STOPPED, None, None
        if self.url:
            self._leave_pool(self.url)
            self.url = None
        if thread is not None:
            self._change(f"Managed ComfyUI ({self.name}) stopped", f"PID {pid}, its process group ended" if pid
                         else "it was waiting to restart")

    def snapshot(self) -> dict[str, Any]:
        """State for the status tab: name, state, message, PID, port, URL, restart countdown, log tail."""
        with self._lock:
            wait = max(0.0, self.restart_at - time.monotonic()) if self.restart_at is not None else None
            return {"name": self.name, "gpu": self.gpu, "state": self.state, "message": self.message, "pid": self.pid,
                    "port": self.port, "url": self.url, "crashes": self.crashes, "exit_code": self.exit_code,
                    "restart_in_s": round(wait, 1) if wait is not None else None, "log_path": str(self.log_path),
                    "log_tail": read_tail(self.log_path)}

    # ------------------------------------------------------------------ the supervisor thread
    def _supervise(self) -> None:
        port: int | None = None
        port_tries = 0
        while not self._stopping.is_set():
            port = port if port is not None and port_is_free(port) else self._ports()
            proc = self._launch(port)
            if proc is None:
                break
            up_since = self._wait_ready(proc)
            if up_since is not None:
                port_tries = 0
                self._wait_exit(proc)
            if self._stopping.is_set():
                break
            code = self._reap(proc)
            if up_since is None and self._port_taken() and port_tries < PORT_TRIES:
                port_tries += 1
                self._change(f"Managed ComfyUI ({self.name}) could not listen on port {port}",
                             "the port was taken meanwhile; trying another port")
                port = None
                continue
            steady = up_since is not None and time.monotonic() - up_since >= self.timing.steady_s
            crashes = 1 if steady else self.crashes + 1
            delay = min(self.timing.backoff_cap_s, self.timing.backoff_start_s * 2 ** (crashes - 1))
            last = (read_tail(self.log_path, 1, self._log_start) or [""])[-1]
            when = "" if up_since is not None else " before it answered"
            sentence = (f"ComfyUI ({self.name}) exited with code {code}{when}; restarting in {delay:g} s "
                        f"(crash {crashes})." + (f" Its last log line: {last}" if last else ""))
            log.warning("%s", sentence)
            self._change(f"Managed ComfyUI ({self.name}) crashed", f"exit code {code}; restarting in {delay:g} s")
            with self._lock:  # the count last: whoever sees it sees the crash's row and sentence too
                self.state, self.message, self.exit_code = RESTARTING, sentence, code
                self.restart_at = time.monotonic() + delay
                self.pid = None
                self.crashes = crashes
            if self._stopping.wait(delay):
                break
            self._change(f"Managed ComfyUI ({self.name}) restarting", f"after crash {self.crashes}")

    def _launch(self, port: int) -> subprocess.Popen | None:
        """Spawn the child on `port` in its own process group; None once stopping, or when its log cannot be written
        (stopped, with a sentence naming the log folder)."""
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_suffix(".log.1"))
        except OSError as err:
            with self._lock:
                self.state, self.message = STOPPED, (f"ComfyUI ({self.name}) was not started: its log folder "
                                                     f"{self.log_path.parent} cannot be written ({os_reason(err)}).")
            log.error("%s", self.message)
            self._change(f"Managed ComfyUI ({self.name}) not started", self.message)
            return None
        command = [str(self.python), "main.py", "--listen", "127.0.0.1", "--port", str(port)]
        command += ["--cpu"] if self.cpu else []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        with self._lock:
            if self._stopping.is_set():
                return None
            with open(self.log_path, "ab") as out:
                out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
                out.flush()
                self._log_start = out.tell()
                try:
                    proc = subprocess.Popen(command, cwd=self.folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                except OSError as err:
                    self.state, self.message = STOPPED, f"ComfyUI ({self.name}) could not be started: {err}."
                    log.error("%s", self.message)
                    return None
            self._proc, self.pid, self.port, self.state, self.restart_at = proc, proc.pid, port, STARTING, None
            self.message = f"starting on port {port}"
        log.info("Managed ComfyUI (%s) started: PID %d, port %d, log %s", self.name, proc.pid, port, self.log_path)
        self._change(f"Managed ComfyUI ({self.name}) starting", f"PID {proc.pid}, port {port}")
        return proc

    def _wait_ready(self, proc: subprocess.Popen) -> float | None:
        """Wait for /system_stats of the child; the monotonic time it answered, or None (it exited, timed out, or
        the instance is stopping)."""
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.timing.ready_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while not self._stopping.is_set() and not _exited(proc):
                try:
                    if whole_answer(client, url + "/system_stats", 2.0).status_code == 200 and not _exited(proc):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    with self._lock:
                        self.message = f"no answer from /system_stats within {self.timing.ready_timeout_s:g} s"
                    self._end_process()
                    return None
                self._stopping.wait(self.timing.poll_s)
            else:
                return None
        old = self.url
        with self._lock:
            self.state, self.url, self.message = UP, url, f"answering at {url}"
        if old and old != url:
            self._leave_pool(old)
        self._join_pool(url)
        self._change(f"Managed ComfyUI ({self.name}) is up", f"PID {proc.pid} at {url}")
        return time.monotonic()

    def _wait_exit(self, proc: subprocess.Popen) -> None:
        while not self._stopping.is_set() and not _exited(proc):
            self._stopping.wait(self.timing.poll_s)

    def _reap(self, proc: subprocess.Popen) -> int | None:
        """The exit code of the ended child, once what is left of its process group is killed too (the unreaped
        child still holds its group's ID, so the signal cannot reach anyone else's)."""
        with self._lock:
            if self._proc is proc:
                self._proc = None
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)  # helpers it left behind, still in its group
        return proc.wait()

    def _port_taken(self) -> bool:
        return any(PORT_TAKEN.search(line) for line in read_tail(self.log_path, 200, self._log_start))

    def _end_process(self) -> None:
        """SIGTERM to the child's process group, SIGKILL after the grace period; the child reaped."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if not _exited(proc):
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.timing.grace_s
            while not _exited(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _exited(proc):
                log.warning("Managed ComfyUI (%s) PID %d ignored SIGTERM; killing it", self.name, proc.pid)
        _signal_group(proc.pid, signal.SIGKILL)  # the rest of its group (the child itself, if it is still there)
        proc.wait()
        log.info("Managed ComfyUI (%s) PID %d stopped (exit code %s)", self.name, proc.pid, proc.returncode)

    def _change(self, what: str, why: str) -> None:
        try:
            self._on_change(what, why)
        except Exception:
            log.exception("recording %r failed", what)


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child has ended, without reaping it (its PID, and so its group's ID, stays ours until then)."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: int) -> None:
    """`sig` to the process group our child leads (its PID); nothing when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ManagedComfyUI:
    """The ComfyUI instances the app runs from COMFYUI_DIR: one per CUDA GPU, or one with --cpu."""

    def __init__(self, settings: Any, *, gpus: int, on_change: OnChange, join_pool: Callable[[str], None],
                 leave_pool: Callable[[str], None], ports: Callable[[], int] = free_port,
                 timing: Timing = Timing()) -> None:
        self.settings = settings
        self.folder = Path(settings.comfyui_dir)
        self.python = find_python(self.folder, settings.comfyui_python)
        self.on_change = on_change
        self.note = ""  # why nothing was started (a server already answers, the folder is not an install)
        self._atexit = False
        names = [_visible_gpu(i) for i in range(gpus)] if gpus > 1 else [None]
        self.instances = [ManagedInstance(self.folder, self.python or Path("python"), gpu=name, cpu=gpus == 0,
                                          log_path=settings.comfyui_log_dir / f"comfyui-{name or 'main'}.log",
                                          on_change=on_change, join_pool=join_pool, leave_pool=leave_pool,
                                          ports=ports, timing=timing) for name in names]

    def problem(self) -> str | None:
        """Why this folder cannot be started (a sentence), or None."""
        if not self.folder.is_dir():
            return f"COMFYUI_DIR {self.folder} is not a folder."
        if not (self.folder / "main.py").is_file():
            return f"COMFYUI_DIR {self.folder} has no main.py: point it at a ComfyUI install."
        if self.python is None:
            return (f"COMFYUI_DIR {self.folder} has no venv/ or .venv/: set COMFYUI_PYTHON to the Python that has "
                    "ComfyUI's requirements.")
        if not self.python.exists():
            return f"COMFYUI_PYTHON {self.python} does not exist."
        return None

    def start(self) -> None:
        """Start every instance, unless a server already answers at COMFYUI_API_URL (never ours to touch) or the
        folder cannot run: then ManagedComfyUIError says why."""
        problem = self.problem()
        if problem is None:
            taken = answering(self.settings.comfyui_urls)
            if taken:
                problem = (f"A ComfyUI already answers at {taken}; the app uses it and does not start its own "
                           "(stop that server, or clear COMFYUI_API_URL, to let the app run COMFYUI_DIR).")
        if problem:
            self.note = problem
            raise ManagedComfyUIError(problem)
        self.note = ""
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        for instance in self.instances:
            instance.start()

    def stop(self) -> None:
        """Stop every instance (their whole process groups); instances that are not running are left alone."""
        for instance in self.instances:
            instance.stop()
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def snapshot(self) -> dict[str, Any]:
        """For the status tab: the folder, its Python, a note, and each instance's state."""
        return {"folder": str(self.folder), "python": str(self.python) if self.python else None,
                "note": self.note or self.problem() or "", "instances": [i.snapshot() for i in self.instances]}

    def badge_note(self) -> str:
        """A few words for the badge when an instance is not up ("" when all are, or none was started)."""
        notes = []
        for inst in self.instances:
            snap = inst.snapshot()
            if snap["state"] == RESTARTING:
                notes.append(f"managed ComfyUI ({inst.name}) crashed, restarting in {snap['restart_in_s']:.0f} s")
            elif snap["state"] == STARTING:
                notes.append(f"managed ComfyUI ({inst.name}) starting")
        return "; ".join(notes)


def _visible_gpu(index: int) -> str:
    """The CUDA_VISIBLE_DEVICES value for the index-th GPU this process sees (honouring its own setting)."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[index] if index < len(visible) else str(index)
