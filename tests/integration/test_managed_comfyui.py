"""The ComfyUI the app starts from COMFYUI_DIR (engine/comfyui_process.py), with real child processes: a folder whose
main.py runs the project's fake ComfyUI (tests/support/comfyui_folder.py)."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from engine.comfyui_process import RESTARTING, STOPPED, UP, ManagedComfyUIError, Timing, free_port
from engine.config import Settings
from engine.manager import AIModelManager
from tests.integration.test_fallback import wait_until as polled_until
from tests.support.comfyui_folder import make_comfyui_folder
from ui.status_tab import render_status

SMALL = dict(width=64, height=64, num_inference_steps=2, seed=5)
FAST = Timing(poll_s=0.05, grace_s=3.0)


def wait_until(predicate, timeout: float = 30.0) -> bool:
    """A child process takes seconds to start on a busy machine: a longer default wait than test_fallback's."""
    return polled_until(predicate, timeout)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the logs go to this test's folder
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def managers(tmp_path, tiny_model_dir, started_managers):
    async def make(folder: Path, urls: list[str] | None = None, **options) -> AIModelManager:
        settings = Settings(comfyui_urls=urls if urls is not None else [f"http://127.0.0.1:{free_port()}"],
                            comfyui_dir=folder, output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                            health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=10.0)
        return await started_managers.start(settings, gpu_count=options.pop("gpu_count", None),
                                            managed_options={"timing": options.pop("timing", FAST), **options})

    return make


def instance(mgr: AIModelManager, index: int = 0) -> dict:
    return mgr.managed_comfyui_state()["instances"][index]


def pool(mgr: AIModelManager) -> dict:
    return {s["url"]: s["up"] for s in mgr.status()["servers"]}


def events(mgr: AIModelManager) -> list[str]:
    return [f"{row['event']}: {row['reason']}" for row in mgr.switches]


def group_alive(pgid: int) -> list[int]:
    """PIDs in process group `pgid` that are not zombies."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


async def test_start_joins_the_pool_and_a_generation_runs_on_it(managers, tmp_path):
    mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI"))
    assert wait_until(lambda: instance(mgr)["state"] == UP)
    url = instance(mgr)["url"]
    assert wait_until(lambda: pool(mgr).get(url) is True)
    result = await mgr.generate_image("a lighthouse", backend="comfyui", **SMALL)
    assert result["status"] == "success" and result["server"] == url
    snap = instance(mgr)
    assert snap["pid"] and snap["port"] == int(url.rsplit(":", 1)[1])
    assert any("--cpu" in line and "--listen 127.0.0.1" in line for line in snap["log_tail"])  # no CUDA GPU here
    assert any(e.startswith("Managed ComfyUI (CPU) is up") for e in events(mgr))
    pid = snap["pid"]
    mgr.shutdown()
    assert not Path(f"/proc/{pid}").exists() and group_alive(pid) == []  # gone and reaped: no zombie


async def test_kill_9_restarts_with_backoff_in_the_switch_log_and_badge(managers, tmp_path):
    mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI"), timing=Timing(poll_s=0.05, grace_s=3.0,
                                                                                  backoff_start_s=2.0))
    assert wait_until(lambda: instance(mgr)["state"] == UP)
    first, port = instance(mgr)["pid"], instance(mgr)["port"]
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: instance(mgr)["state"] == RESTARTING, 5)
    assert "exited with code -9; restarting in 2 s (crash 1)" in instance(mgr)["message"]
    assert wait_until(lambda: "restarting in" in mgr.active_backend()["reason"], 2)  # the badge says so
    assert wait_until(lambda: instance(mgr)["state"] == UP and instance(mgr)["pid"] != first)
    second = instance(mgr)["pid"]
    assert instance(mgr)["port"] == port  # the same URL in the pool
    assert wait_until(lambda: pool(mgr).get(instance(mgr)["url"]) is True)
    os.kill(second, signal.SIGKILL)
    assert wait_until(lambda: instance(mgr)["state"] == RESTARTING, 5)
    assert "restarting in 4 s (crash 2)" in instance(mgr)["message"]  # backed off
    rows = events(mgr)
    assert "Managed ComfyUI (CPU) crashed: exit code -9; restarting in 2 s" in rows
    assert "Managed ComfyUI (CPU) crashed: exit code -9; restarting in 4 s" in rows
    assert any(r.startswith("Managed ComfyUI (CPU) restarting") for r in rows)
    assert not Path(f"/proc/{first}").exists()  # the crashed child was reaped


async def test_stop_ends_the_whole_process_group_and_start_brings_it_back(managers, tmp_path):
    mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI", helper=True))
    assert wait_until(lambda: instance(mgr)["state"] == UP)
    pid, url = instance(mgr)["pid"], instance(mgr)["url"]
    assert len(group_alive(pid)) == 2  # main.py and its helper
    mgr.stop_managed_comfyui()
    assert instance(mgr)["state"] == STOPPED and instance(mgr)["pid"] is None
    assert not Path(f"/proc/{pid}").exists() and group_alive(pid) == []
    assert url not in pool(mgr)
    assert f"Managed ComfyUI (CPU) stopped: PID {pid}, its process group ended" in events(mgr)
    mgr.start_managed_comfyui()
    assert wait_until(lambda: instance(mgr)["state"] == UP)
    assert instance(mgr)["pid"] != pid
    mgr.restart_managed_comfyui()
    assert wait_until(lambda: instance(mgr)["state"] == UP)


async def test_a_port_taken_meanwhile_moves_to_another_port(managers, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    offered = iter([port])
    try:
        mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI"), ports=lambda: next(offered, None) or free_port())
        assert wait_until(lambda: instance(mgr)["state"] == UP)
        assert instance(mgr)["port"] != port
        assert f"Managed ComfyUI (CPU) could not listen on port {port}: the port was taken meanwhile; trying another " \
               "port" in events(mgr)
        assert instance(mgr)["crashes"] == 0
        taken.settimeout(0.1)
        assert taken.fileno() != -1 and taken.getsockname()[1] == port  # the other socket was left alone
    finally:
        taken.close()


async def test_nothing_starts_when_a_server_answers_at_the_configured_url(managers, tmp_path, fake):
    mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI"), urls=[fake.url])
    state = mgr.managed_comfyui_state()
    assert f"A ComfyUI already answers at {fake.url}" in state["note"]
    assert all(i["pid"] is None and i["state"] == STOPPED for i in state["instances"])
    assert any(e.startswith("Managed ComfyUI not started: A ComfyUI already answers") for e in events(mgr))
    with pytest.raises(ManagedComfyUIError, match="already answers"):
        mgr.start_managed_comfyui()
    mgr.stop_managed_comfyui()  # stops only what it started: nothing
    assert httpx.get(fake.url + "/system_stats").status_code == 200
    assert "already answers" in render_status(mgr.status())


async def test_a_main_py_that_exits_at_once_backs_off_with_a_sentence(managers, tmp_path):
    mgr = await managers(make_comfyui_folder(tmp_path / "Broken", exits=True))
    assert wait_until(lambda: instance(mgr)["crashes"] >= 3, 20)
    rows = events(mgr)
    for delay in (1, 2, 4):
        assert f"Managed ComfyUI (CPU) crashed: exit code 3; restarting in {delay} s" in rows
    message = instance(mgr)["message"]
    assert "exited with code 3 before it answered; restarting in 4 s (crash 3)" in message
    assert "Its last log line: boom: this ComfyUI cannot start" in message
    html = render_status(mgr.status())
    assert "exited with code 3 before it answered" in html and "boom: this ComfyUI cannot start" in html
    started = time.monotonic()
    mgr.shutdown()  # during the backoff wait: returns at once
    assert time.monotonic() - started < 3


async def test_one_instance_per_gpu_each_with_its_device(managers, tmp_path):
    mgr = await managers(make_comfyui_folder(tmp_path / "ComfyUI"), gpu_count=lambda: 2)
    assert [i["name"] for i in mgr.managed_comfyui_state()["instances"]] == ["GPU 0", "GPU 1"]
    assert wait_until(lambda: all(i["state"] == UP for i in mgr.managed_comfyui_state()["instances"]))
    for index in (0, 1):
        tail = instance(mgr, index)["log_tail"]
        assert any(f"CUDA_VISIBLE_DEVICES={index}" in line and "--cpu" not in line for line in tail)
    urls = {i["url"] for i in mgr.managed_comfyui_state()["instances"]}
    assert len(urls) == 2 and wait_until(lambda: all(pool(mgr).get(u) for u in urls))


async def test_a_folder_that_is_not_an_install_is_a_sentence(managers, tmp_path):
    (tmp_path / "empty").mkdir()
    mgr = await managers(tmp_path / "empty")
    assert "has no main.py" in mgr.managed_comfyui_state()["note"]
    with pytest.raises(ManagedComfyUIError, match="has no main.py"):
        mgr.start_managed_comfyui()


def test_a_log_folder_that_cannot_be_written_is_a_sentence_not_a_silent_stop(tmp_path):
    from engine.comfyui_process import ManagedInstance
    from tests.support.comfyui_folder import make_comfyui_folder

    folder = make_comfyui_folder(tmp_path / "ComfyUI")
    (tmp_path / "a-file").write_text("not a folder")
    events: list = []
    instance = ManagedInstance(folder, folder / "venv/bin/python", gpu=None, cpu=True,
                               log_path=tmp_path / "a-file" / "logs" / "comfyui.log",
                               on_change=lambda what, why: events.append((what, why)), join_pool=lambda url: None,
                               leave_pool=lambda url: None, timing=Timing(poll_s=0.05, grace_s=2))
    instance.start()
    try:
        assert polled_until(lambda: instance.snapshot()["state"] == STOPPED and instance.snapshot()["message"], 10)
    finally:
        instance.stop()
    snapshot = instance.snapshot()
    assert snapshot["message"].endswith("was not started: its log folder " + str(tmp_path / "a-file" / "logs")
                                        + " cannot be written (not a directory).") and snapshot["pid"] is None
    assert any(what.endswith("not started") for what, _ in events)  # in the switch log too
