"""The outputs folder through the running app: a killed run's leftovers are swept at start, and the outputs
gallery never follows a symlink out of the folder."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from engine.config import Settings
from tests.ui.conftest import needs_chromium, open_app, start_app, stop_app, wait_until

NOTICE = "Cleaned up after an interrupted run: removed 2 partial files (6.3 MB), marked 1 storyboard interrupted."


def storyboard(status: str, video: str | None = None) -> dict:
    """A storyboard JSON as engine/video.py writes it: the scenes, then what the render made."""
    return {"title": "harbour", "fps": 8, "width": 64, "height": 64,
            "scenes": [{"prompt": "a harbour at dawn", "duration": 1.0}],
            "render": {"status": status, "error": None, "video": video, "keyframes": [], "timings": {}}}


def test_leftovers_of_a_killed_run_are_swept_at_start(run_app, tmp_path):
    day = tmp_path / "outputs" / "2024-05-01"
    day.mkdir(parents=True)
    # what kill -9 leaves mid-write: a PNG's temp file, an mp4 being encoded, a storyboard still "rendering"
    (day / "120000-7-a-fox.png.part").write_bytes(b"\x89PNG" + b"\0" * (6 * 1024 * 1024))
    (day / "120100-video-harbour.part.mp4").write_bytes(b"\0" * 4096)
    rendering = day / "120100-video-harbour.json"
    rendering.write_text(json.dumps(storyboard("rendering"), indent=2), encoding="utf-8")
    # finished results stay exactly as they are
    finished_png = day / "110000-3-a-boat.png"
    Image.new("RGB", (16, 16), "navy").save(finished_png)
    finished_json = day / "110500-video-boats.json"
    finished_json.write_text(json.dumps(storyboard("success", video="110500-video-boats.mp4"), indent=2),
                             encoding="utf-8")
    kept = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in (finished_png, finished_json)}

    url, log = run_app()

    assert not (day / "120000-7-a-fox.png.part").exists()
    assert not (day / "120100-video-harbour.part.mp4").exists()
    render = json.loads(rendering.read_text(encoding="utf-8"))["render"]
    assert render["status"] == "interrupted" and render["interrupted_at"][:4].isdigit(), render
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in kept} == kept
    assert sorted(p.name for p in day.iterdir()) == sorted([rendering.name, finished_png.name, finished_json.name])

    status = Client(url, verbose=False).predict(api_name="/status")
    assert status["notices"].count(NOTICE) == 1, status["notices"]
    assert Client(url, verbose=False).predict(api_name="/status")["notices"].count(NOTICE) == 1  # not repeated
    assert not any(str(day) in notice for notice in status["notices"])  # no server path in what the web sees
    assert log.read_text().count("Cleaned up after an interrupted run") == 1


# -- the outputs gallery and symlinks -------------------------------------------------------------

@pytest.fixture(scope="module")
def linked_app(tmp_path_factory, tiny_model_dir):
    """The app over an outputs folder of its own holding two saved images, a symlink to an image outside the
    folder, a symlink to one of its own images, and a symlinked folder full of outside images."""
    out = tmp_path_factory.mktemp("linked-outputs")
    outside = tmp_path_factory.mktemp("server-files")  # under the temp dir: Gradio itself would serve it
    day = out / "2024-05-01"
    day.mkdir()
    Image.new("RGB", (16, 16), "red").save(day / "100000-1-real-one.png")
    Image.new("RGB", (16, 16), "blue").save(day / "100100-2-real-two.png")
    Image.new("RGB", (16, 16), "green").save(outside / "secret-target.png")
    (outside / "deep").mkdir()
    Image.new("RGB", (16, 16), "yellow").save(outside / "deep" / "secret-deep.png")
    (day / "zz-link-out.png").symlink_to(outside / "secret-target.png")
    (day / "zz-link-in.png").symlink_to(day / "100000-1-real-one.png")
    (out / "zz-linked-folder").symlink_to(outside, target_is_directory=True)
    settings = Settings(comfyui_urls=[], enable_comfyui=False, output_dir=out, tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path_factory.mktemp("no-models"))
    app = start_app(settings)
    yield app, day, outside
    stop_app(app)


@needs_chromium
def test_outputs_gallery_lists_only_regular_files_inside_the_folder(ui_page, linked_app):
    app, day, outside = linked_app
    page = ui_page
    open_app(page, app.url)
    page.get_by_role("tab", name="Outputs folder").click()
    page.click("#load-outputs")
    page.wait_for_selector("#outputs-gallery .thumbnail-item img")
    thumbs = page.locator("#outputs-gallery .thumbnail-item")
    # one update fills the gallery: a listing that wrongly has more shows it at once
    wait_until(lambda: thumbs.count() >= 3, 0.3)
    srcs = [img.get_attribute("src") for img in page.locator("#outputs-gallery .thumbnail-item img").all()]

    assert thumbs.count() == 2, srcs
    assert len(srcs) == 2
    assert any("real-one" in src for src in srcs) and any("real-two" in src for src in srcs), srcs
    assert not any(word in src for src in srcs for word in ("link", "secret", outside.name)), srcs
    # what the browser is served is exactly the two saved images, never the linked files' bytes
    served = {httpx.get(urljoin(app.url, src), timeout=10).content for src in srcs}
    real = {(day / name).read_bytes() for name in ("100000-1-real-one.png", "100100-2-real-two.png")}
    assert served == real
    assert (outside / "secret-target.png").read_bytes() not in served
