"""UI pieces without a browser: presets, per-session cancel switches, badge, status rendering, flags."""
from __future__ import annotations

import ast
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from ui.badge import badge_html
from ui.launcher import parse_args, parse_auth, serve
from ui.image_options import saved_hires, saved_plot
from ui.models import model_choices
from ui.presets import aspect_ratios, quality_presets, size_for_aspect
from ui.preview import display_preview
from ui.serialize import api_safe
from ui.session_history import SessionHistories
from ui.sessions import IMAGE_JOB, VIDEO_JOB, JobLimits, Jobs, TooManyJobs
from ui.status_tab import render_status
from tests.ui.conftest import run_coroutine

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
FORBIDDEN = {"torch", "diffusers", "httpx"}


def test_ui_never_imports_torch_diffusers_or_httpx():
    for path in UI_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & FORBIDDEN, f"{path.name} imports {names}"


def test_presets_load_and_apply():
    assert all(v["steps"] > 0 for v in quality_presets().values())
    assert "16:9 widescreen" in aspect_ratios()


@pytest.mark.parametrize("aspect,w,h,expected", [
    ("1:1 square", 1024, 1024, (1024, 1024)),
    ("16:9 widescreen", 1024, 1024, (1344, 768)),
    ("9:16 phone", 1024, 1024, (768, 1344)),
    ("4:3 landscape", 256, 256, (296, 224)),
    ("4:3 landscape", 64, 64, (72, 64)),  # never below 64 px
    ("Custom", 300, 200, None),
])
def test_size_for_aspect(aspect, w, h, expected):
    size = size_for_aspect(aspect, w, h)
    assert size == expected
    if size:
        assert all(side % 8 == 0 and 64 <= side <= 2048 for side in size)


def test_previews_are_scaled_up_crisply():
    tiny = Image.new("RGB", (8, 6), "red")
    tiny.putpixel((0, 0), (0, 0, 255))
    big = display_preview(tiny)
    assert big.size == (256, 192) and big.getpixel((31, 31)) == (0, 0, 255) and big.getpixel((32, 32)) == (255, 0, 0)
    assert display_preview(None) is None


class FakeClient:
    """What the job counter reads of a Gradio request: its session, login and address."""

    def __init__(self, session: str, ip: str = "10.0.0.1", username: str | None = None) -> None:
        self.session_hash, self.username = session, username
        self.client = type("Address", (), {"host": ip})()


def test_jobs_have_per_session_stop_switches_and_limits():
    run_coroutine(_jobs_have_per_session_stop_switches_and_limits())


async def _jobs_have_per_session_stop_switches_and_limits():
    jobs = Jobs(JobLimits(per_session=2, per_login=3, per_ip=4))
    async with jobs.job(FakeClient("a")) as a1, jobs.job(FakeClient("a")) as a2, jobs.job(FakeClient("b")) as b:
        assert jobs.cancel("a") == 2
        assert a1.is_set() and a2.is_set() and not b.is_set()
        assert jobs.cancel("nobody") == 0
        with pytest.raises(TooManyJobs, match="This session already has 2 jobs running or waiting"):
            async with jobs.job(FakeClient("a")):
                pass
        async with jobs.job(FakeClient("c")):  # a fourth job from the same address is still allowed
            with pytest.raises(TooManyJobs, match="Your address already has 4 jobs"):
                async with jobs.job(FakeClient("d")):
                    pass
    assert jobs.running("a") == 0 and jobs.running("b") == 0
    async with jobs.job(FakeClient("a")), jobs.job(FakeClient("a")):  # the counts were given back
        pass


def test_skip_sets_only_its_sessions_skip_switches_and_not_their_stop():
    run_coroutine(_skip_sets_only_its_sessions_skip_switches())


async def _skip_sets_only_its_sessions_skip_switches():
    jobs = Jobs(JobLimits(per_session=2, per_login=3, per_ip=4))
    async with jobs.job(FakeClient("a"), IMAGE_JOB) as a, jobs.job(FakeClient("b"), IMAGE_JOB) as b:
        assert jobs.skip("a") == 1 and jobs.skip("nobody") == 0
        assert jobs.skip_switch(a).is_set() and not jobs.skip_switch(b).is_set()
        assert not a.is_set()  # Skip is not Stop: the job goes on
    assert jobs.skip_switch(a) is None and jobs.skip("a") == 0  # the ended job's switch is gone


def test_a_tabs_stop_reaches_only_its_own_kind_of_job():
    run_coroutine(_a_tabs_stop_reaches_only_its_own_kind_of_job())


async def _a_tabs_stop_reaches_only_its_own_kind_of_job():
    jobs = Jobs(JobLimits(per_session=3, per_login=3, per_ip=4))
    async with jobs.job(FakeClient("a"), IMAGE_JOB) as image, jobs.job(FakeClient("a"), VIDEO_JOB) as video:
        assert jobs.skip("a") == 1 and not jobs.skip_switch(video).is_set()  # Skip is the Image tab's
        assert jobs.cancel("a", IMAGE_JOB) == 1 and image.is_set() and not video.is_set()  # the render goes on
        assert jobs.cancel("a", VIDEO_JOB) == 1 and video.is_set()
    async with jobs.job(FakeClient("a"), IMAGE_JOB) as image, jobs.job(FakeClient("a"), VIDEO_JOB) as video:
        assert jobs.cancel("a") == 2 and image.is_set() and video.is_set()  # a client gone: every one of its jobs


def test_badge_escapes_and_marks_the_backend():
    html = badge_html({"backend": "comfyui", "label": "ComfyUI · <FLUX>", "reason": ""})
    assert 'data-backend="comfyui"' in html and "&lt;FLUX&gt;" in html
    assert "starting" in badge_html(None)


def test_model_choices_mark_comfyui_and_skip_unavailable():
    choices = model_choices([
        {"id": "flux.1-dev", "label": "FLUX.1-dev", "backend": "comfyui", "backend_label": "ComfyUI",
         "available": True},
        {"id": "sdxl-1.0", "label": "SDXL 1.0", "backend": "diffusers", "backend_label": "diffusers",
         "available": False},
        {"id": "tiny", "label": "Tiny demo model", "backend": "diffusers", "backend_label": "diffusers",
         "available": True},
    ])
    assert [v for _, v in choices] == ["auto", "flux.1-dev", "tiny"]
    assert "ComfyUI" in choices[1][0] and "diffusers" in choices[2][0]


def test_model_choices_and_the_status_table_show_each_license():
    models = [{"id": "sdxl-1.0", "label": "SDXL 1.0", "backend": "diffusers", "backend_label": "diffusers",
               "available": True, "license": "CreativeML Open RAIL++-M"},
              {"id": "mine", "label": "mine", "backend": "diffusers", "backend_label": "diffusers",
               "available": True, "license": "unknown"}]
    assert [label for label, _ in model_choices(models)][1:] == ["SDXL 1.0 · diffusers · CreativeML Open RAIL++-M",
                                                                 "mine · diffusers · license unknown"]
    html = render_status({"active": {"label": "x"}, "models": models})
    assert "<th>license</th>" in html and "CreativeML Open RAIL++-M" in html and "license unknown" in html


def test_status_renders_servers_and_switches():
    html = render_status({
        "active": {"backend": "diffusers", "label": "diffusers · SDXL 1.0 (fallback: ComfyUI unreachable)",
                   "reason": "ComfyUI unreachable"},
        "servers": [{"url": "http://gpu:8188", "up": False, "since": 0, "latency_ms": None, "device": "cuda:0 RTX",
                     "vram_total": 24 * 1024**3, "vram_free": 20 * 1024**3, "queue_remaining": 2,
                     "models": {"checkpoints": ["a.safetensors"], "unets": [], "clips": [], "vaes": []},
                     "last_error": "connection refused <x>"}],
        "hardware": {"device": "cuda", "name": "RTX 4090", "vram_gb": 24.0, "ram_gb": 64.0},
        "loaded_model": "sdxl-1.0", "models": [], "notices": ["SD 1.5 weights not found"],
        "output_dir": "/data/outputs", "switches": [{"time": "12:00:00", "event": "ComfyUI http://gpu:8188 is down",
                                                      "reason": "connection refused", "backend": "x"}],
    })
    for needle in ("http://gpu:8188", "gator-down", "20.0 GiB free of 24.0 GiB", "a.safetensors",
                   "connection refused &lt;x&gt;", "RTX 4090", "sdxl-1.0", "/data/outputs", "is down",
                   "SD 1.5 weights not found"):
        assert needle in html
    assert "No server configured" in render_status({"servers": []})
    assert html.count("ComfyUI unreachable") == 1  # the label says it already: not repeated after it
    said_apart = render_status({"active": {"label": "no model can run now", "reason": "the GPU is out of memory"}})
    assert "— the GPU is out of memory" in said_apart


def test_status_names_each_backend_once_and_its_api_name_where_it_differs():
    html = render_status({"backends": [
        {"name": "diffusers", "label": "diffusers", "enabled": True, "ready": True, "summary": "cpu", "models": []},
        {"name": "comfyui", "label": "ComfyUI", "enabled": True, "ready": False, "summary": "", "models": []},
        {"name": "cloud", "label": "Cloud (fal)", "enabled": True, "ready": True, "summary": "", "models": []}]})
    assert "<b>diffusers</b> <code>" not in html and "<b>ComfyUI</b> <code>" not in html
    assert "<b>Cloud (fal)</b> <code>cloud</code>" in html  # `prefer=cloud` is not what its label says


def test_saved_hires_settings_come_back_or_turn_the_hires_fix_off():
    assert saved_hires({"width": 64}, ["Lanczos"]) == {"hires_scale": 1.0, "hires_sampler": "same",  # made without:
                                                       "hires_prompt": "", "hires_negative_prompt": "",  # off again
                                                       "hires_checkpoint": "Use same checkpoint",
                                                       "hires_resize_width": 0, "hires_resize_height": 0}
    saved = {"hires_scale": 2.0, "strength": 0.4, "hires_steps": 6, "hires_upscaler": "4x_Tiny"}
    resized = saved_hires({**saved, "hires_scale": None, "hires_resize_width": 128, "hires_resize_height": 96},
                          ["Lanczos"])  # made to a resize size: that size back, the upscale at its default
    assert (resized["hires_scale"], resized["hires_resize_width"], resized["hires_resize_height"]) == (1.0, 128, 96)
    assert saved_hires(saved, ["Lanczos", "4x_tiny"]) == {"hires_scale": 2.0, "hires_strength": 0.4,
                                                           "hires_resize_width": 0, "hires_resize_height": 0,
                                                           "hires_steps": 6, "hires_upscaler": "4x_tiny",
                                                           "hires_sampler": "same", "hires_prompt": "",
                                                           "hires_negative_prompt": "",
                                                           "hires_checkpoint": "Use same checkpoint"}
    own = {**saved, "hires_sampler": "ddim", "hires_prompt": "a cat <lora:x:0.5>", "hires_negative_prompt": "fog",
           "hires_checkpoint": "detailXL"}
    assert {k: v for k, v in saved_hires(own, ["Lanczos"]).items() if k.startswith("hires_") and k[6:] in (
        "sampler", "prompt", "negative_prompt", "checkpoint")} == {
        "hires_sampler": "ddim", "hires_prompt": "a cat <lora:x:0.5>", "hires_negative_prompt": "fog",
        "hires_checkpoint": "detailXL"}
    assert saved_hires(saved, ["Lanczos"])["hires_upscaler"] == "Lanczos"  # an upscaler this app lacks


def test_saved_plot_axes_from_ours_and_from_a1111():
    assert saved_plot({"prompt": "x"}) is None
    ours = {"plot": {"script": "X/Y/Z plot", "x_type": "Steps", "x_values": "2,3", "y_type": "seed",
                     "y_values": "1, 2", "z_type": None, "z_values": None}}
    assert saved_plot(ours) == {"x_type": "steps", "x_values": "2,3", "y_type": "seed", "y_values": "1, 2",
                                "z_type": "Nothing", "z_values": ""}
    a1111 = {"script": "X/Y/Z plot", "x_type": "CFG Scale", "x_values": "5, 7", "y_type": "Hires upscaler",
             "y_values": "Latent"}  # an axis this app does not plot is left out
    assert saved_plot(a1111) == {"x_type": "guidance", "x_values": "5, 7", "y_type": "Nothing",
                                 "y_values": "", "z_type": "Nothing", "z_values": ""}


def test_a_session_history_takes_every_change_whoever_makes_it(tmp_path):
    histories = SessionHistories(limit=3)
    shown = [{"path": str(tmp_path / "old.png")}]  # what the tab showed before the server knew the session
    run = histories.add("tab", {"path": str(tmp_path / "a.png")}, shown)  # a run's image
    histories.add("tab", {"path": str(tmp_path / "up.png")}, run[:1])  # an upscale, from an older copy of the tab
    after_delete = histories.remove("tab", tmp_path / "a.png", run)
    assert [Path(e["path"]).name for e in after_delete] == ["up.png", "old.png"]
    later = histories.add("tab", {"path": str(tmp_path / "b.png")}, run)  # the run's next image
    assert [Path(e["path"]).name for e in later] == ["b.png", "up.png", "old.png"]  # nothing undone
    assert len(histories.add("tab", {"path": "c.png"}, later)) == 3  # the limit
    assert histories.add("", {"path": "x.png"}, None) == [{"path": "x.png"}]  # no session: nothing kept
    histories.forget("tab")
    assert histories.add("tab", {"path": "d.png"}, []) == [{"path": "d.png"}]
    few = SessionHistories(limit=3, max_sessions=2)  # the least recently used tab goes first
    for tab in ("a", "b", "a", "c"):
        few.add(tab, {"path": f"{tab}.png"}, None)
    assert few.remove("b", "b.png", [{"path": "shown.png"}]) == [{"path": "shown.png"}]  # b was dropped


def test_a_login_limit_of_zero_is_off(monkeypatch):
    from ui.login import LoginGuard

    monkeypatch.setenv("GATOR_LOGIN_MAX_ADDRESS_FAILURES", "0")
    monkeypatch.setenv("GATOR_LOGIN_DELAY_S", "0")
    guard = LoginGuard.from_env([("ann", "a1")])
    assert (guard.max_failures, guard.max_address_failures) == (5, 0)  # the others keep their defaults
    for name in ("x", "y", "z", "w", "v", "u"):  # six names from one address: no address lock-out
        guard._record_failure(name, "10.0.0.1")
    assert not guard.locked("ann", "10.0.0.1")
    for _ in range(5):
        guard._record_failure("ann", "10.0.0.1")
    assert guard.locked("ann", "10.0.0.2")  # the login's own limit still holds


def test_upscalers_vaes_and_workflows_are_listed():
    html = render_status({"upscalers": ["Lanczos", "4x_tiny"], "vaes": [], "workflows": ["my <graph>"],
                          "wildcards": ["color", "people/hair"], "wildcards_dir": "/data/wildcards"})
    for needle in ("status-extras", "<code>Lanczos</code>, <code>4x_tiny</code>", "<td>VAEs</td><td>none</td>",
                   "<code>my &lt;graph&gt;</code>", "<code>__color__</code>, <code>__people/hair__</code>",
                   "<code>/data/wildcards</code>"):
        assert needle in html
    assert "status-extras" not in render_status({})


def test_local_workers_are_listed_only_when_there_are_several():
    worker = {"name": "cuda:0", "device": "cuda:0", "device_name": "RTX 4090", "vram_gb": 24.0, "state": "running",
              "loaded_model": "sdxl-1.0", "jobs_done": 3, "compile": {"summary": "ready: 1024x1024"}}
    assert "status-workers" not in render_status({"workers": [worker]})  # one device: "This machine" says it all
    html = render_status({"workers": [worker, {**worker, "name": "cuda:1", "state": "idle, 2 waiting",
                                               "loaded_model": None, "jobs_done": 0}]})
    for needle in ("Local workers", "<code>cuda:1</code>", "24.0 GiB", "idle, 2 waiting", "none yet",
                   "ready: 1024x1024", "<td>3</td>"):
        assert needle in html


def test_api_results_name_no_file_objects():
    safe = api_safe({"path": "/x.png", "image": object(), "scenes": [{"path": "/k.png"}], "n": float("nan")})
    assert safe == {"saved_path": "/x.png", "scenes": [{"saved_path": "/k.png"}], "n": None}


def test_flags_and_auth(monkeypatch):
    monkeypatch.delenv("GATOR_AUTH", raising=False)
    args = parse_args([])
    assert (args.host, args.port, args.share, args.auth_pairs) == ("127.0.0.1", 7860, False, None)
    args = parse_args(["--host", "0.0.0.0", "--port", "9000", "--share", "--auth", "ann:pw1,bob:pw:2"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 9000, True)
    assert args.auth_pairs == [("ann", "pw1"), ("bob", "pw:2")]
    monkeypatch.setenv("GATOR_AUTH", "env:secret")
    assert parse_args([]).auth_pairs == [("env", "secret")]
    with pytest.raises(ValueError):
        parse_auth("no-colon")
    with pytest.raises(SystemExit):
        parse_args(["--auth", ":nouser"])


class _FakeDemo:
    def __init__(self, share_url):
        self.share_url, self.local_url, self.launched = share_url, "http://127.0.0.1:7860/", {}

    def launch(self, **kwargs):
        self.launched = kwargs
        return None, self.local_url, self.share_url

    def block_thread(self):  # pragma: no cover - serve(block=False) never calls it
        raise AssertionError


def test_share_without_auth_warns_and_a_failed_share_keeps_serving(caplog):
    caplog.set_level(logging.WARNING, logger="gator.app")
    args = SimpleNamespace(host="127.0.0.1", port=7860, share=True, auth_pairs=None)
    demo = _FakeDemo(share_url=None)
    serve(demo, args, {"css": ""}, block=False)
    assert demo.launched["share"] is True and demo.launched["auth"] is None and demo.launched["css"] == ""
    text = caplog.text
    assert "consider --auth" in text and "Could not create a share link" in text
    caplog.clear()
    serve(_FakeDemo(share_url="https://x.gradio.live"), SimpleNamespace(host="h", port=1, share=True,
                                                                        auth_pairs=[("u", "p")]), {}, block=False)
    assert "consider --auth" not in caplog.text and "Could not create" not in caplog.text


class _CheckedDemo(_FakeDemo):
    """A demo whose launch, like Gradio's, can skip Gradio's own 3 s check of the page (`_frontend`)."""

    def __init__(self, local_url):
        super().__init__(share_url=None)
        self.local_url, self.closed = local_url, False

    def launch(self, _frontend=True, **kwargs):
        return super().launch(_frontend=_frontend, **kwargs)

    def close(self):
        self.closed = True


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_page_slower_than_gradios_3_s_check_still_starts_the_app():
    import http.server
    import threading
    import time

    port = _free_port()
    server_box = {}

    def serve_late():  # the page answers only after Gradio's single 3 s try would have given up
        time.sleep(3.5)
        server_box["server"] = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                               http.server.SimpleHTTPRequestHandler)
        server_box["server"].serve_forever()

    threading.Thread(target=serve_late, daemon=True).start()
    demo = _CheckedDemo(f"http://127.0.0.1:{port}/")
    started = time.monotonic()
    try:
        serve(demo, SimpleNamespace(host="127.0.0.1", port=port, share=False, auth_pairs=None), {}, block=False)
    finally:
        time.sleep(0.1)
        if "server" in server_box:
            server_box["server"].shutdown()
    assert demo.launched["_frontend"] is False and not demo.closed and time.monotonic() - started >= 3.5


def test_a_page_that_never_answers_stops_the_app_with_a_sentence(monkeypatch):
    from ui import launcher

    monkeypatch.setattr(launcher, "PAGE_WAIT_S", 0.5)
    demo = _CheckedDemo(f"http://127.0.0.1:{_free_port()}/")  # nothing listens there
    with pytest.raises(launcher.NotServed, match=r"did not answer within 0.5 s .*NO_PROXY=127\.0\.0\.1") as caught:
        serve(demo, SimpleNamespace(host="127.0.0.1", port=1, share=False, auth_pairs=None), {}, block=False)
    assert demo.local_url in str(caught.value) and demo.closed


def test_a_launch_that_fails_says_what_to_check_instead_of_a_traceback():
    from ui import launcher

    class TakenPort(_CheckedDemo):
        def launch(self, _frontend=True, **kwargs):
            raise OSError("Cannot find empty port in range: 7860-7860.")

    class ConnectError(Exception):  # as httpx's: not an OSError
        pass

    class RefusedByProxy(_CheckedDemo):
        def launch(self, _frontend=True, **kwargs):
            raise ConnectError("[Errno 111] Connection refused")  # Gradio's own request, sent to a dead proxy

    args = SimpleNamespace(host="127.0.0.1", port=7860, share=False, auth_pairs=None)
    taken = TakenPort("http://127.0.0.1:7860/")
    with pytest.raises(launcher.NotServed, match=r"on 127\.0\.0\.1:7860 \(Cannot find empty port .*--port\.$"):
        serve(taken, args, {}, block=False)
    refused = RefusedByProxy("http://127.0.0.1:7860/")
    with pytest.raises(launcher.NotServed,
                       match=r"\(\[Errno 111\] Connection refused\)\. Let requests to localhost bypass"):
        serve(refused, args, {}, block=False)
    assert taken.closed and refused.closed


def test_the_installed_gradio_lets_the_app_check_its_page_itself():
    import inspect

    import gradio as gr

    assert "_frontend" in inspect.signature(gr.Blocks.launch).parameters  # else Gradio's 3 s check stays


def test_a_results_details_and_a_picked_images_parameters_note_the_same_settings():
    from ui.image_tab import details_markdown, parameters_text, setting_notes

    made = {"seed": 1, "model": "Tiny demo model", "model_id": "tiny", "backend": "diffusers", "width": 64,
            "height": 64, "num_inference_steps": 4, "guidance_scale": 7.0, "sampler": "euler", "path": "/o/1.png",
            "prompt": "a fox", "loras": [{"name": "detail", "weight": 0.5}], "strength": 0.4, "hires_scale": 2.0,
            "hires_upscaler": "Lanczos", "hires_checkpoint": "detailXL", "hires_prompt": "a fox, sharp",
            "tiling": True, "freeu": True, "cfg_rescale": 0.7, "clip_skip": 2}
    notes = setting_notes(made)
    assert notes == ["**LoRAs** detail (0.5)", "**Denoising strength** 0.4", "**Clip skip** 2", "**FreeU** on",
                     "**Tiling** on", "**CFG rescale** 0.7", "**Hires fix** ×2 with Lanczos, checkpoint detailXL",
                     "**Hires prompt** a fox, sharp"]
    assert " · ".join(notes) in details_markdown(made)  # one line of the result's details
    assert all(f"\n\n{note}" in parameters_text(made) for note in notes)  # a line each for a picked image
    assert setting_notes({"seed": 1}) == []
