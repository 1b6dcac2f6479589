"""engine.health against fake ComfyUI servers: detection timing, hysteresis, discovery."""
from __future__ import annotations

import threading
import time

import pytest

from engine.config import Settings
from engine.health import HealthMonitor, ServerState
from tests.support.fake_comfyui import FakeComfyUI

INTERVAL, TIMEOUT = 0.2, 0.2
SLACK = 0.5  # scheduling slack on a loaded machine


@pytest.fixture
def fake():
    with FakeComfyUI() as server:
        yield server


def test_poll_now_reads_state(fake):
    monitor = HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT)
    changes = []
    monitor.subscribe(lambda url, old, new: changes.append((url, old.up, new.up)))
    snap = monitor.poll_now()
    st = snap[fake.url]
    assert isinstance(st, ServerState)
    assert st.up is True and st.latency_ms is not None and st.latency_ms >= 0
    assert st.device == "cpu" and st.vram_total == fake.vram_total and st.vram_free == fake.vram_free
    assert st.comfyui_version == "0.3.64" and st.queue_remaining == 0
    assert st.models.checkpoints == ["tiny-sd15.safetensors"] and st.models.unets == []
    assert monitor.up_servers() == [fake.url]
    assert changes == [(fake.url, None, True)]
    (when, url, up, reason), = monitor.history
    assert url == fake.url and up is True and "answered" in reason


def test_unknown_server_goes_down_at_first_failure(fake):
    fake.stop()
    monitor = HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT)
    assert monitor.snapshot()[fake.url].up is None
    st = monitor.poll_now()[fake.url]
    assert st.up is False and st.last_error == "connection refused"
    assert monitor.up_servers() == []


def test_snapshot_is_a_copy(fake):
    monitor = HealthMonitor([fake.url])
    snap = monitor.poll_now()
    snap[fake.url].up = False
    snap[fake.url].models.checkpoints.append("x")
    assert monitor.state(fake.url).up is True
    assert monitor.state(fake.url).models.checkpoints == ["tiny-sd15.safetensors"]


def test_hysteresis_one_dropped_poll_does_not_flip(fake):
    monitor = HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT, down_after=2)
    changes = []
    monitor.subscribe(lambda url, old, new: changes.append(new.up))
    assert monitor.poll_now()[fake.url].up is True
    fake.stop()
    st = monitor.poll_now()[fake.url]
    assert st.up is True and st.failures == 1 and st.last_error == "connection refused"
    fake.restart()
    st = monitor.poll_now()[fake.url]
    assert st.up is True and st.failures == 0
    fake.stop()
    monitor.poll_now()
    assert monitor.poll_now()[fake.url].up is False
    assert changes == [True, False]
    fake.restart()
    assert monitor.poll_now()[fake.url].up is True  # up_after=1
    assert [h[2] for h in monitor.history] == [True, False, True]


def test_up_after_needs_consecutive_successes(fake):
    monitor = HealthMonitor([fake.url], up_after=2)
    assert monitor.poll_now()[fake.url].up is None
    assert monitor.poll_now()[fake.url].up is True


def test_report_failure_counts_like_a_poll(fake):
    monitor = HealthMonitor([fake.url], down_after=2)
    monitor.poll_now()
    monitor.report_failure(fake.url, "socket dropped during a job")
    assert monitor.state(fake.url).up is True
    monitor.report_failure(fake.url, "socket dropped during a job")
    st = monitor.state(fake.url)
    assert st.up is False and st.last_error == "socket dropped during a job"


def test_a_failure_from_before_the_server_answered_again_is_not_counted(fake):
    monitor = HealthMonitor([fake.url], down_after=1)
    seen_before = time.monotonic()  # a job's failure, reported late: the server has answered a poll since
    monitor.poll_now()
    monitor.report_failure(fake.url, "socket dropped during a job", seen_at=seen_before)
    assert monitor.state(fake.url).up is True and len(monitor.history) == 1
    monitor.report_failure(fake.url, "socket dropped during a job", seen_at=time.monotonic())  # seen after it
    assert monitor.state(fake.url).up is False


def test_background_detects_down_and_up_in_time(fake):
    with HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT, down_after=2) as monitor:
        flips = []
        monitor.subscribe(lambda url, old, new: flips.append(new))
        assert monitor.wait_for(fake.url, True, INTERVAL + TIMEOUT + SLACK)
        t0 = time.monotonic()
        fake.stop()
        # the first failure is confirmed at once by a second poll: down within interval + timeout
        assert monitor.wait_for(fake.url, False, INTERVAL + TIMEOUT + SLACK)
        assert flips[-1].up is False and flips[-1].failures == 2  # it took a second failed poll
        t0 = time.monotonic()
        fake.restart()
        assert monitor.wait_for(fake.url, True, INTERVAL + TIMEOUT + SLACK)
        assert time.monotonic() - t0 <= INTERVAL + TIMEOUT + SLACK
    assert not monitor.running


def test_hanging_server_goes_down(fake):
    with HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT) as monitor:
        assert monitor.wait_for(fake.url, True, 2)
        fake.hang = True
        # a poll unanswered after half the timeout is hedged: both requests failing is a confirmed failure
        assert monitor.wait_for(fake.url, False, INTERVAL + TIMEOUT + SLACK)
        assert "no answer within" in monitor.state(fake.url).last_error
        fake.hang = False


def test_a_slow_answer_within_the_timeout_does_not_flip(fake):
    monitor = HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=1.0)
    assert monitor.poll_now()[fake.url].up is True
    fake.hang = True  # the poll's first request waits past half the timeout, so a hedge request goes out
    release = threading.Timer(0.65, lambda: setattr(fake, "hang", False))
    release.start()
    st = monitor.poll_now()[fake.url]
    release.join()
    assert st.up is True and st.failures == 0


def test_one_hung_server_does_not_delay_another():
    with FakeComfyUI() as a, FakeComfyUI() as b:
        with HealthMonitor([a.url, b.url], interval_s=INTERVAL, timeout_s=1.0) as monitor:
            assert monitor.wait_for(a.url, True, 2) and monitor.wait_for(b.url, True, 2)
            a.hang = True
            b.stop()
            t0 = time.monotonic()
            assert monitor.wait_for(b.url, False, 2 * INTERVAL + SLACK)
            assert time.monotonic() - t0 < 2 * INTERVAL + SLACK
            a.hang = False


def test_models_refresh_and_queue(fake):
    fake.step_delay_s = 0.05
    with HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT, models_refresh_s=0.3) as monitor:
        assert monitor.wait_for(fake.url, True, 2)
        assert monitor.state(fake.url).models.unets == []
        fake.install_flux()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not monitor.state(fake.url).models.unets:
            time.sleep(0.05)
        assert monitor.state(fake.url).models.unets == ["flux1-dev.safetensors"]


def test_subscriber_errors_do_not_stop_monitoring(fake):
    monitor = HealthMonitor([fake.url])
    seen = []
    monitor.subscribe(lambda *a: 1 / 0)
    unsubscribe = monitor.subscribe(lambda url, old, new: seen.append(new.up))
    monitor.poll_now()
    unsubscribe()
    fake.stop()
    monitor.poll_now(), monitor.poll_now()
    assert seen == [True] and monitor.state(fake.url).up is False


def test_history_is_bounded(fake):
    monitor = HealthMonitor([fake.url], down_after=1, history_size=3)
    for _ in range(4):
        monitor.poll_now()
        monitor.report_failure(fake.url, "x")
    assert len(monitor.history) == 3


def test_from_settings():
    settings = Settings(comfyui_urls=["http://127.0.0.1:1", "http://127.0.0.1:2/"], health_interval_s=0.5,
                        health_timeout_s=0.25)
    monitor = HealthMonitor.from_settings(settings)
    assert monitor.urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert (monitor.interval_s, monitor.timeout_s) == (0.5, 0.25)


# ---------------------------------------------------------------------------- answers of the wrong shape
def test_wrong_shaped_system_stats_marks_the_server_down_with_a_sentence(fake):
    monitor = HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT)
    fake.answer_next("/system_stats", {"system": 7, "devices": []})
    st = monitor.poll_now()[fake.url]
    assert st.up is False
    assert st.last_error == (f"ComfyUI at {fake.url} sent an unexpected answer to GET /system_stats: "
                             "system must be a mapping (got 7).")
    assert monitor.history[-1][3] == st.last_error
    st = monitor.poll_now()[fake.url]  # the real answer again
    assert st.up is True and st.last_error is None and st.device == "cpu"


def test_system_stats_that_is_not_json_or_not_a_mapping_is_a_sentence_too(fake):
    monitor = HealthMonitor([fake.url])
    fake.answer_next("/system_stats", b"<html>502 Bad Gateway</html>")
    assert monitor.poll_now()[fake.url].last_error == (f"ComfyUI at {fake.url} sent an answer to GET /system_stats "
                                                      "that is not JSON.")
    fake.answer_next("/system_stats", "<html>")
    assert monitor.poll_now()[fake.url].last_error.endswith(
        'GET /system_stats: the answer must be a mapping (got "<html>").')


def test_monitor_thread_survives_wrong_shapes_and_recovers(fake):
    with HealthMonitor([fake.url], interval_s=INTERVAL, timeout_s=TIMEOUT, down_after=2) as monitor:
        assert monitor.wait_for(fake.url, True, 2)
        wrong = {"system": {}, "devices": [{"name": "cpu", "vram_total": "lots"}]}
        fake.answer_next("/system_stats", wrong, times=None)
        assert monitor.wait_for(fake.url, False, INTERVAL + TIMEOUT + SLACK)
        assert monitor.state(fake.url).last_error.endswith(
            'devices[0].vram_total must be a whole number (got "lots").')
        assert monitor.running
        fake.clear_answers()
        assert monitor.wait_for(fake.url, True, INTERVAL + TIMEOUT + SLACK)
    assert fake.canned_served and set(fake.canned_served) == {"GET /system_stats"}


def test_wrong_shaped_queue_and_models_leave_them_unknown_not_the_server(fake):
    monitor = HealthMonitor([fake.url])
    fake.answer_next("/prompt", {"exec_info": {"queue_remaining": "two"}}, method="GET")
    fake.answer_next("/object_info/UNETLoader", {"UNETLoader": {"input": "unet_name"}})
    st = monitor.poll_now()[fake.url]
    assert st.up is True and st.last_error is None
    assert st.queue_remaining is None and st.models is None
    assert set(fake.canned_served) == {"GET /prompt", "GET /object_info/UNETLoader"}
    st = monitor.poll_now()[fake.url]  # models are read again at the next poll while unknown
    assert st.queue_remaining == 0 and st.models.checkpoints == ["tiny-sd15.safetensors"]


def test_devices_and_version_come_from_the_checked_answer(fake):
    fake.answer_next("/system_stats", {"system": {"comfyui_version": "0.4.0", "os": "nt"}, "devices": []})
    st = HealthMonitor([fake.url]).poll_now()[fake.url]
    assert st.up is True and st.comfyui_version == "0.4.0" and st.device is None and st.vram_total is None


def test_an_answer_to_a_poll_begun_before_a_failure_was_seen_is_not_counted(fake, monkeypatch):
    """The mirror of the rule above: a poll asked while the server was up, answered after a job saw the server
    fail (a slow answer on a busy machine), does not bring it back up; the next poll decides."""
    monitor = HealthMonitor([fake.url], down_after=1, up_after=1)
    monitor.poll_now()
    real_poll = monitor._poll

    def a_job_fails_while_the_poll_is_answered(url, want_models):
        answer = real_poll(url, want_models)  # asked (and answered) before the job's failure below was seen
        monitor.report_failure(url, "socket dropped during a job", seen_at=time.monotonic())
        return answer
    monkeypatch.setattr(monitor, "_poll", a_job_fails_while_the_poll_is_answered)
    monitor.poll_now()
    assert monitor.state(fake.url).up is False and [h[2] for h in monitor.history] == [True, False]
    monkeypatch.setattr(monitor, "_poll", real_poll)
    assert monitor.poll_now()[fake.url].up is True  # a poll begun after it: the server is back


def test_a_server_added_to_a_monitor_started_with_none_is_polled(fake):
    """COMFYUI_API_URL empty and COMFYUI_DIR set: the ComfyUI the app starts is the only server, added after start."""
    monitor = HealthMonitor([], interval_s=0.05, timeout_s=1.0).start()
    try:
        monitor.add_server(fake.url)
        deadline = time.monotonic() + 5
        while monitor.snapshot()[fake.url.rstrip("/")].up is not True and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.snapshot()[fake.url.rstrip("/")].up is True
    finally:
        monitor.stop()


@pytest.fixture
def trickling_url():
    """A server that sends its headers at once, then a byte every 0.3 s: httpx's per-read timeout never fires."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Trickle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_server_that_trickles_its_answer_times_out_instead_of_holding_the_poll(trickling_url):
    monitor = HealthMonitor([trickling_url], timeout_s=1.0)
    try:
        started = time.monotonic()
        state = monitor.poll_now()[trickling_url]
        assert time.monotonic() - started < 5  # held about one timeout, not for ever
        assert state.up is not True and "no answer within 1 s" in (state.last_error or ""), state
    finally:
        monitor.stop()


def test_the_managed_comfyuis_readiness_check_does_not_wait_on_a_trickle_either(trickling_url):
    from engine.comfyui_process import answering

    started = time.monotonic()
    assert answering([trickling_url], timeout_s=1.0) is None and time.monotonic() - started < 5
