"""Catalogue downloads (engine/downloads.py) against a fake Hugging Face Hub (tests/support/fake_hub.py):
progress, cancel, resume after a cancel and after a dropped connection, errors as sentences, and the model
listed as available after the download without a restart."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from engine.config import Settings
from engine.downloads import PARTIAL_DIR, DownloadError, Downloads
from engine.manager import AIModelManager
from tests.conftest import CPU
from tests.support.fake_hub import SD15_FILE, SD15_REPO, SDXL_FILE, SDXL_REPO, catalogue_hub

SIZE = 2 * 1024 * 1024
SD15 = "stable-diffusion-v1-5"
SDXL = "sdxl-1.0"


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """tests/conftest.py sets HF_HUB_OFFLINE=1 for the whole suite; these tests talk to a local fake Hub."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub():
    server = catalogue_hub(SIZE).start()
    yield server
    server.close()


@pytest.fixture
def make_manager(tmp_path, tiny_model_dir, hub):
    managers: list[AIModelManager] = []

    def make(allow: bool = True, **overrides) -> AIModelManager:
        """A manager on the fake Hub; `allow`: as if "Allow downloads" had been pressed (GATOR_ALLOW_DOWNLOADS=1
        would also let diffusers fetch whole hub repos, so catalogue models would count as available)."""
        values = dict(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                      tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models", hf_endpoint=hub.url)
        values.update(overrides)
        manager = AIModelManager(Settings(**values), hardware=CPU, start_monitor=False)
        manager.downloads.retry_wait_s = 0.05
        if allow:
            manager.allow_downloads()
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown()
        for spec in Downloads.catalogue():
            manager.downloads.wait(spec.id, timeout=10)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(models_dir: Path) -> list[Path]:
    return sorted((models_dir / PARTIAL_DIR).glob("*.incomplete"))


async def test_a_download_reports_progress_and_the_model_is_listed_without_a_restart(make_manager, hub, tmp_path):
    manager = make_manager()
    await manager.initialize_models()
    before = {m["id"]: m for m in manager.available_models()}
    assert not before[SD15]["available"] and "not found" in before[SD15]["note"]
    assert manager.active_backend()["demo"]

    hub.bytes_per_s = 1024 * 1024  # 2 s for the file: progress is seen on the way
    manager.start_download(SD15)
    manager.start_download(SD15)  # one download per model: the second start changes nothing
    seen = []
    while True:
        state = manager.downloads_state()["models"][SD15]
        if state["status"] == "downloading":
            seen.append(state)
        if not state["running"]:
            break
        time.sleep(0.05)
    assert state["status"] == "done", state
    assert len({s["done_bytes"] for s in seen}) >= 3, seen  # the numbers move
    assert [s["done_bytes"] for s in seen] == sorted(s["done_bytes"] for s in seen)
    middle = seen[len(seen) // 2]
    assert middle["total_bytes"] == SIZE and 0 < middle["percent"] < 100, middle
    assert middle["speed_bps"] > 0 and middle["eta_s"] is not None and middle["eta_s"] > 0, middle
    assert len(hub.gets(SD15_FILE)) == 1  # the second start did not start another transfer

    final = tmp_path / "models" / SD15_FILE
    assert sha(final) == hub.file(SD15_REPO, SD15_FILE).sha256
    assert partials(tmp_path / "models") == []
    # listed and used without a restart: rescan_models() ran when the download finished
    listed = {m["id"]: m for m in manager.available_models()}
    assert listed[SD15]["available"], listed[SD15]
    assert not manager.active_backend()["demo"] and "Stable Diffusion 1.5" in manager.active_backend()["label"]
    assert manager.status()["downloads"]["models"][SD15]["status"] == "done"
    # a later start is a no-op: the file is there
    manager.start_download(SD15)
    assert manager.downloads_state()["models"][SD15]["status"] == "done"


def test_cancel_leaves_nothing_under_the_final_name_and_a_later_start_resumes(make_manager, hub, tmp_path):
    manager = make_manager()
    models = tmp_path / "models"
    hub.bytes_per_s = 512 * 1024
    manager.start_download(SDXL)
    wait_for(lambda: manager.downloads_state()["models"][SDXL]["done_bytes"] >= 300_000)
    started = time.monotonic()
    manager.cancel_download(SDXL)
    state = manager.downloads.wait(SDXL, timeout=10)
    assert time.monotonic() - started < 2, "cancel took too long"
    assert state.status == "cancelled" and not state.running, state
    assert not (models / SDXL_FILE).exists()
    [partial] = partials(models)
    kept = partial.stat().st_size
    assert 300_000 <= kept < SIZE and state.done_bytes == kept
    assert manager.downloads_state()["models"][SDXL]["status"] == "cancelled"

    hub.bytes_per_s = None
    manager.start_download(SDXL)
    state = manager.downloads.wait(SDXL, timeout=20)
    assert state.status == "done", state
    assert hub.gets(SDXL_FILE)[-1]["range"] == f"bytes={kept}-"  # resumed, not started again
    assert hub.gets(SDXL_FILE)[-1]["status"] == 206
    assert sha(models / SDXL_FILE) == hub.file(SDXL_REPO, SDXL_FILE).sha256
    assert partials(models) == []


def test_a_dropped_connection_resumes_and_the_file_is_byte_identical(make_manager, hub, tmp_path):
    manager = make_manager()
    hub.drop_after(700_000)
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "done", state
    gets = hub.gets(SD15_FILE)
    assert [g["range"] for g in gets] == [None, "bytes=700000-"], gets
    assert sha(tmp_path / "models" / SD15_FILE) == hub.file(SD15_REPO, SD15_FILE).sha256


def test_a_connection_that_keeps_dropping_fails_with_a_sentence_and_a_later_start_resumes(make_manager, hub,
                                                                                           tmp_path):
    manager = make_manager()
    models = tmp_path / "models"
    hub.drop_after(300_000)  # the first try gets 300,000 bytes, every retry none
    hub.drop_after(0, times=20)
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "failed", state
    assert state.error == ("The connection to the Hugging Face Hub (127.0.0.1:%d) was lost (RemoteProtocolError). "
                           "Press Download to resume from 293.0 KiB." % hub.port), state.error
    assert state.done_bytes == 300_000 and not (models / SD15_FILE).exists()
    assert len(hub.gets(SD15_FILE)) == 7  # the first try and RETRIES + 1 resumed ones

    hub.clear_drops()
    manager.start_download(SD15)
    assert manager.downloads.wait(SD15, timeout=20).status == "done"
    assert hub.gets(SD15_FILE)[-1]["range"] == "bytes=300000-"
    assert sha(models / SD15_FILE) == hub.file(SD15_REPO, SD15_FILE).sha256


def test_the_hubs_cdn_redirect_is_followed_and_the_token_stays_on_the_hub(make_manager, hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    hub.redirect_to_cdn = True
    manager = make_manager()
    manager.start_download(SD15)
    assert manager.downloads.wait(SD15, timeout=20).status == "done"
    head, get = hub.requests[0], hub.gets(SD15_FILE)[0]
    assert head["method"] == "HEAD" and head["status"] == 302 and head["auth"]
    assert get["path"].startswith("/cdn/") and not get["auth"], get
    assert sha(tmp_path / "models" / SD15_FILE) == hub.file(SD15_REPO, SD15_FILE).sha256


def test_refusals_are_sentences(make_manager, hub, tmp_path):
    manager = make_manager(models_dir=None)
    with pytest.raises(DownloadError, match="set GATOR_MODELS_DIR"):
        manager.start_download(SD15)
    assert "GATOR_MODELS_DIR" in manager.downloads_state()["blocked"]

    manager = make_manager()
    with pytest.raises(DownloadError, match=r"Unknown model 'no-such-model'\. Models that can be downloaded: "
                                            r"SDXL 1\.0 \(sdxl-1\.0\), Stable Diffusion 1\.5"):
        manager.start_download("no-such-model")
    with pytest.raises(DownloadError, match="built in: it needs no download"):
        manager.start_download("tiny")
    with pytest.raises(DownloadError, match="FLUX.1-dev has no Hugging Face file"):
        manager.start_download("flux.1-dev")
    with pytest.raises(DownloadError, match="Unknown model"):
        manager.cancel_download("no-such-model")
    manager.start_download("Stable Diffusion 1.5")  # the label works as well as the id
    assert manager.downloads.wait(SD15, timeout=20).status == "done"

    off = make_manager(allow=False, models_dir=tmp_path / "other")
    with pytest.raises(DownloadError, match='press "Allow downloads".*GATOR_ALLOW_DOWNLOADS=1'):
        off.start_download(SD15)
    assert not off.downloads_state()["allowed"]
    off.allow_downloads()
    assert off.downloads_state()["allowed"] and off.downloads_state()["blocked"] == ""
    off.start_download(SD15)
    assert off.downloads.wait(SD15, timeout=20).status == "done"
    assert make_manager(allow=False, allow_downloads=True).downloads_state()["allowed"]  # GATOR_ALLOW_DOWNLOADS=1


def test_offline_mode_is_a_sentence(make_manager, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    manager = make_manager()
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE=1"):
        manager.start_download(SD15)


@pytest.mark.parametrize("case", ["no network", "no file", "no repository"])
def test_hub_failures_end_as_sentences_and_leave_no_file(make_manager, hub, tmp_path, case):
    if case == "no network":
        manager = make_manager(hf_endpoint="http://127.0.0.1:9")
        expected = "Could not reach the Hugging Face Hub (127.0.0.1:9): no network, or HF_ENDPOINT is wrong."
    elif case == "no file":
        hub.remove_file(SD15_REPO, SD15_FILE)
        hub.add_file(SD15_REPO, "other.safetensors", b"x")
        manager = make_manager()
        expected = f"has no file {SD15_FILE} in {SD15_REPO}."
    else:
        hub.remove_file(SD15_REPO, SD15_FILE)
        manager = make_manager()
        expected = f"has no repository {SD15_REPO}, or it is private or gated: set HF_TOKEN"
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "failed" and expected in state.error, state.error
    assert str(tmp_path) not in state.error
    assert not (tmp_path / "models" / SD15_FILE).exists() and partials(tmp_path / "models") == []
    assert manager.downloads_state()["models"][SD15]["error"] == state.error


def test_not_enough_space_is_a_sentence_before_any_byte(make_manager, hub, tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr("engine.downloads.shutil.disk_usage",
                        lambda path: real(path)._replace(free=SIZE // 2))
    manager = make_manager()
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "failed" and "Not enough free space in the models folder for Stable Diffusion 1.5: it " \
        "needs 2.0 MiB more and 1.0 MiB are free" in state.error, state.error
    assert hub.gets(SD15_FILE) == []


def test_a_corrupt_transfer_is_deleted_not_installed(make_manager, hub, tmp_path):
    manager = make_manager()
    models = tmp_path / "models"
    etag = hub.file(SD15_REPO, SD15_FILE).sha256
    partial = models / PARTIAL_DIR / f"{SD15_FILE}.{etag}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 1000)  # a partial file that does not match the Hub's bytes
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "failed" and "did not match the Hub's checksum" in state.error, state
    assert not (models / SD15_FILE).exists() and not partial.exists()
    manager.start_download(SD15)
    assert manager.downloads.wait(SD15, timeout=20).status == "done"
    assert sha(models / SD15_FILE) == etag


def test_weights_already_here_need_no_download(make_manager, hub, tmp_path):
    folder = tmp_path / "models" / SD15  # a diffusers folder named after the catalogue id
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    manager = make_manager()
    state = manager.downloads_state()["models"][SD15]
    assert state["status"] == "installed" and state["installed_at"] == f"diffusers folder {SD15}/", state
    manager.start_download(SD15)  # nothing to do
    assert hub.requests == [] and not manager.downloads_state()["models"][SD15]["running"]


def test_a_full_disk_mid_download_is_a_sentence_without_a_path(make_manager, hub, tmp_path, monkeypatch):
    import errno

    def disk_fills_up(self, job, url, partial, have, size):
        partial.write_bytes(b"x" * 1000)
        job.progress(1000)
        raise OSError(errno.ENOSPC, "No space left on device", str(partial))

    monkeypatch.setattr(Downloads, "_stream_once", disk_fills_up)
    manager = make_manager()
    manager.start_download(SD15)
    state = manager.downloads.wait(SD15, timeout=20)
    assert state.status == "failed" and state.error == ("No space left in the models folder after 1000 B of 2.0 MiB. "
                                                        "Free some space, then press Download to resume."), state.error
    assert not (tmp_path / "models" / SD15_FILE).exists()


def test_a_server_that_sends_more_than_it_announced_is_cut_off_and_leaves_no_file(make_manager, tmp_path):
    """A mirror (HF_ENDPOINT) announcing 1000 bytes and sending 25 MiB: never more than announced on disk."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Endless(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def headers_for(self, length: int | None) -> None:
            self.send_response(200)
            self.send_header("X-Repo-Commit", "a" * 40)
            self.send_header("ETag", '"' + "b" * 40 + '"')
            if length is not None:
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Connection", "close")
            self.end_headers()

        def do_HEAD(self):
            self.headers_for(1000)

        def do_GET(self):
            self.headers_for(None)  # no length: the body runs until the connection closes
            try:
                for _ in range(400):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        manager = make_manager(hf_endpoint=f"http://127.0.0.1:{server.server_port}")
        manager.start_download(SD15)
        state = manager.downloads.wait(SD15, timeout=30)
    finally:
        server.shutdown()
    assert state.status == "failed" and "The server sent more than the 1000 B it announced" in state.error
    assert partials(tmp_path / "models") == [] and not (tmp_path / "models" / "v1-5-pruned-emaonly.safetensors").exists()


def test_sizes_read_in_the_largest_unit_and_a_missing_size_as_a_question_mark():
    from engine.downloads import human_bytes

    assert [human_bytes(n) for n in (800, 12 * 1024, 350 * 1024**2, 1.2 * 1024**3)] == [
        "800 B", "12.0 KiB", "350.0 MiB", "1.2 GiB"]
    assert human_bytes(None) == human_bytes("lots") == "?"
