"""The History view: a picked thumbnail shown large with its parameters, Download, Reuse and Delete (after a
confirmation, inside the outputs folder only); the outputs folder paged, with captions, videos included."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from engine import outputs
from engine.config import Settings
from engine.manager import AIModelManager
from tests.conftest import CPU
from tests.ui.conftest import (generate_one, history_count, needs_chromium, open_app, run_into_second_image, start_app,
                               stop_app, wait_progress, wait_text, wait_until)

PARAMS = {"prompt": "a lighthouse at dusk", "negative_prompt": "", "seed": 5, "width": 8, "height": 8,
          "num_inference_steps": 3, "guidance_scale": 1.0, "sampler": "euler", "model": "tiny", "backend": "local"}


def _saved(folder: Path, seed: int, when: float) -> Path:
    path = outputs.save_image(Image.new("RGB", (8, 8), (seed % 255, 0, 0)), {**PARAMS, "seed": seed}, folder)
    os.utime(path, (when, when))
    return path


# -- the engine: listing everything, deleting only what is ours -------------------------------------

def test_saved_outputs_lists_every_image_and_video_but_no_partial_file(tmp_path):
    out = tmp_path / "outputs"
    images = [_saved(out, seed, 1_000_000 + seed) for seed in range(70)]
    day = images[0].parent
    video = day / "clip.mp4"
    video.write_bytes(b"not really a video")
    (day / "clip.part.mp4").write_bytes(b"half")
    (day / "notes.txt").write_text("x")
    listed = outputs.saved_outputs(out)
    assert len(listed) == 71  # no limit of 60
    assert listed[0] == video.resolve() and listed[-1] == images[0].resolve()
    assert not any(p.name.endswith((".part.mp4", ".txt")) for p in listed)


def test_delete_output_removes_a_saved_file_and_refuses_anything_else(tmp_path):
    out = tmp_path / "outputs"
    mine = _saved(out, 1, time.time())
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"keep me")
    link = mine.parent / "link.png"
    link.symlink_to(outside)
    ann = outputs.save_image(Image.new("RGB", (8, 8)), PARAMS, out, owner="ann")

    for path in (outside, link, mine.parent, out / ".." / "secret.png", "secret.png", mine.parent / "gone.png"):
        with pytest.raises(outputs.DeleteRefused, match="Could not delete"):
            outputs.delete_output(out, path)
    with pytest.raises(outputs.DeleteRefused, match="inside the outputs folder"):
        outputs.delete_output(out, mine, owner="ann")  # another login's folder
    assert outside.read_bytes() == b"keep me" and link.is_symlink() and mine.exists() and ann.exists()

    assert outputs.delete_output(out, mine) == mine
    assert not mine.exists()
    manager = AIModelManager(Settings(output_dir=out, enable_comfyui=False, comfyui_urls=[]), hardware=CPU,
                             start_monitor=False, admins=["root"])
    with pytest.raises(outputs.DeleteRefused):
        manager.delete_output(ann, owner="bob")
    manager.delete_output(ann, owner="root")  # an admin may delete anyone's
    assert not ann.exists()


# -- the browser ------------------------------------------------------------------------------------

@needs_chromium
def test_a_picked_thumbnail_is_shown_large_with_its_parameters_and_can_be_deleted(ui_page, local_app):
    page = ui_page
    generate_one(page, local_app.url, "a green kettle on a stove", steps=3, seed=777)
    assert history_count(page) == 1
    saved = [p for p in local_app.saved_images() if "-777-a-green-kettle" in p.name]  # (time-seed-prompt.png)
    assert len(saved) == 1

    page.locator("#history .thumbnail-item").first.click()
    big = page.locator("#picked-image img")
    big.wait_for(state="visible")
    box = big.bounding_box()
    assert box and box["width"] >= 200 and box["height"] >= 200, box  # large, not a thumbnail
    text = wait_text(page, "picked-params", "a green kettle on a stove")
    for needle in ("Seed 777", "Size 64x64", "Steps 3", "Model", "Backend"):
        assert needle in text, text
    assert "local" in text.lower() or "diffusers" in text.lower(), text
    for elem_id in ("picked-download", "reuse-parameters", "delete-picked"):
        assert page.locator(f"#{elem_id}").is_visible(), elem_id

    page.click("#delete-picked")
    page.locator("#confirm-delete").wait_for(state="visible")
    wait_text(page, "picked-info", "Confirm delete")
    assert saved[0].exists()  # one click deletes nothing
    page.click("#confirm-delete")
    wait_text(page, "picked-info", "Deleted")
    assert not saved[0].exists()
    assert wait_until(lambda: history_count(page) == 0, 5)
    assert not page.locator("#picked-view").is_visible()


def test_a_delete_during_a_run_stays_deleted(ui_page, local_app):
    page = ui_page
    run_into_second_image(page, local_app.url, "a blue teapot in the rain", count=2, seed=4100)  # then delete image 1
    assert wait_until(lambda: history_count(page) == 1, 10)
    page.locator("#history .thumbnail-item").first.click()
    wait_text(page, "picked-params", "Seed 4100")
    page.click("#delete-picked")
    page.locator("#confirm-delete").wait_for(state="visible")
    page.click("#confirm-delete")
    wait_text(page, "picked-info", "Deleted")
    wait_progress(page, "Done", timeout_ms=60_000)
    time.sleep(1.0)  # the run's last updates are in
    assert history_count(page) == 1  # the second image only: the deleted one does not come back
    page.locator("#history .thumbnail-item").first.click()
    wait_text(page, "picked-params", "Seed 4101")


@pytest.fixture
def full_app(tmp_path, tiny_model_dir):
    """An app whose outputs folder holds 50 images and a video (newest)."""
    out = tmp_path / "outputs"
    for seed in range(50):
        _saved(out, seed, 1_000_000 + seed)
    video = next(out.iterdir()) / "120000-9-a-boat.mp4"
    video.write_bytes(b"not really a video")
    settings = Settings(comfyui_urls=[], enable_comfyui=False, output_dir=out, tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path / "no-models")
    app = start_app(settings)
    yield app
    stop_app(app)


@needs_chromium
def test_the_outputs_folder_pages_through_everything_with_captions_and_videos(ui_page, full_app):
    page = ui_page
    open_app(page, full_app.url)
    page.get_by_role("tab", name="Outputs folder").click()
    page.click("#load-outputs")
    wait_text(page, "outputs-page", "Page 1 of 3")
    thumbs = page.locator("#outputs-gallery .thumbnail-item")
    assert wait_until(lambda: thumbs.count() == 24, 5), thumbs.count()
    assert page.locator("#outputs-gallery video").count() >= 1  # the video is listed, newest first
    gallery_text = page.locator("#outputs-gallery").inner_text()
    assert "seed 49" in gallery_text and "video" in gallery_text, gallery_text

    page.click("#outputs-next")
    wait_text(page, "outputs-page", "Page 2 of 3")
    page.click("#outputs-next")
    wait_text(page, "outputs-page", "Page 3 of 3")
    assert wait_until(lambda: thumbs.count() == 3, 5), thumbs.count()  # 51 files: 24 + 24 + 3
    assert "seed 0" in page.locator("#outputs-gallery").inner_text()
    page.click("#outputs-previous")
    wait_text(page, "outputs-page", "Page 2 of 3")

    thumbs.first.click()  # a saved image is shown large too, with its parameters
    page.locator("#picked-params").wait_for(state="visible")  # the view is not in the page until it shows
    wait_text(page, "picked-params", "a lighthouse at dusk")
    assert page.locator("#picked-image img").is_visible()
