"""A storyboard arrives as text or as an uploaded file, never as a server path: a path-shaped storyboard
through the API or the YAML box reads nothing and names no server path."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client

from tests.ui.conftest import needs_chromium, wait_text
from tests.ui.test_video_tab import open_video_tab

SECRET_KEYS = "api_token: hunter2\ndatabase_password: swordfish\n"
SCENE_FILE = "title: SECRET-TITLE\nscenes:\n  - prompt: SECRET-SCENE\n    duration: 1\n"
LEAKS = ("hunter2", "swordfish", "api_token", "database_password", "SECRET", "No such file", "Could not read")


@pytest.fixture(scope="module")
def server_files(tmp_path_factory) -> dict[str, Path]:
    """Files a visitor must not reach: secrets, a renderable storyboard, and a path that does not exist."""
    folder = tmp_path_factory.mktemp("server-files")
    (folder / "secrets.yaml").write_text(SECRET_KEYS)
    (folder / "board.json").write_text('{"scenes": ["SECRET-SCENE"], "title": "SECRET-TITLE"}')
    (folder / "board.yml").write_text(SCENE_FILE)
    return {"keys": folder / "secrets.yaml", "json": folder / "board.json", "yml": folder / "board.yml",
            "missing": folder / "nope.yaml"}


def assert_reads_nothing(message: str, path: Path) -> None:
    assert "file name is not opened" in message, message
    assert str(path) not in message and path.name not in message, message
    for leak in LEAKS:
        assert leak not in message, (leak, message)


@pytest.mark.parametrize("which", ["keys", "json", "yml", "missing"])
def test_api_never_opens_a_path_shaped_storyboard(local_app, server_files, which):
    client = Client(local_app.url, verbose=False)
    before = set(local_app.output_dir.rglob("*.mp4"))
    path = server_files[which]
    with pytest.raises(Exception) as err:
        client.predict(storyboard=str(path), use_ai_generation=False, api_name="/generate_video")
    assert_reads_nothing(str(err.value), path)
    assert set(local_app.output_dir.rglob("*.mp4")) == before  # no video made of the file's text


@needs_chromium
def test_yaml_box_never_opens_a_path_and_an_upload_is_read(ui_page, local_app, server_files, tmp_path):
    page = ui_page
    open_video_tab(page, local_app.url)
    page.locator("#video-yaml-box").get_by_text("Storyboard file (YAML)").click()
    page.locator("#video-use-ai input").uncheck()
    for which in ("keys", "yml"):
        path = server_files[which]
        page.locator("#video-yaml .cm-content").click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(path))
        # each button has its own first words, so the line left by the click before never passes for this one
        page.click("#video-render")
        message = wait_text(page, "video-progress", "Failed: The storyboard must")
        assert_reads_nothing(message, path)
        page.click("#video-yaml-load")
        message = wait_text(page, "video-progress", "Nothing loaded:")
        assert_reads_nothing(message, path)
    # the way to bring a file: upload it, and its text lands in the box
    mine = tmp_path / "mine.yaml"
    mine.write_text("scenes:\n  - prompt: an uploaded harbour\n    duration: 1\n")
    with page.expect_file_chooser() as chooser:
        page.click("#video-yaml-upload")
    chooser.value.set_files(str(mine))
    wait_text(page, "video-progress", "Storyboard file opened")
    page.wait_for_function("() => document.querySelector('#video-yaml').innerText.includes('an uploaded harbour')")
    page.click("#video-render")
    wait_text(page, "video-progress", "Video ready", 30_000)
