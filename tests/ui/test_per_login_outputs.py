"""Per-login outputs (--auth): each login saves under outputs/<login>/YYYY-MM-DD/ and its outputs gallery lists
only its own images; an admin (--admin / GATOR_ADMINS) sees everyone's; without --auth nothing changes."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from gradio_client import Client
from PIL import Image

from engine import outputs
from engine.config import Settings
from engine.manager import AIModelManager
from tests.conftest import CPU
from tests.ui.conftest import fill_image_form, needs_chromium, open_app, run_coroutine, wait_progress, wait_until

ODD_NAMES = ["../x", "..", ".", "", "/etc/passwd", "a/b", "a\\b", "~root", "Ann", "2024-05-01", "x" * 300,
             "ünï", "a b", "ann.17239b6e2501", "-ann-", "a\0b"]


def day() -> str:
    return datetime.now().strftime("%Y-%m-%d")


# -- the folder of a login ------------------------------------------------------------------------

def test_a_login_name_never_leaves_the_outputs_folder(tmp_path):
    root = tmp_path.resolve()
    names = {}
    for name in ODD_NAMES + ["ann", "bob", "a_b", "bob-2"]:
        folder = outputs.owner_folder(root, name)
        assert folder.parent == root, (name, folder)
        assert folder.name not in ("", ".", "..") and not folder.name.startswith(".")
        assert "/" not in folder.name and "\\" not in folder.name and "\0" not in folder.name
        assert len(folder.name) <= 60
        names[name] = folder.name
    assert names["ann"] == "ann" and names["a_b"] == "a_b" and names["bob-2"] == "bob-2"  # plain names as they are
    # two logins never share a folder, even on a case-insensitive disk, and none is a day folder
    assert len({n.lower() for n in names.values()}) == len(names)
    assert names["2024-05-01"] != "2024-05-01"
    assert outputs.owner_folder(root, None) == root  # no login: the outputs folder itself


def test_images_are_saved_and_listed_per_login(tmp_path):
    image = Image.new("RGB", (8, 8), "red")
    ann = outputs.save_image(image, {"prompt": "ann fox", "seed": 1}, tmp_path, "ann")
    bob = outputs.save_image(image, {"prompt": "bob boat", "seed": 2}, tmp_path, "bob")
    odd = outputs.save_image(image, {"prompt": "odd one", "seed": 3}, tmp_path, "../x")
    anyone = outputs.save_image(image, {"prompt": "no login", "seed": 4}, tmp_path)
    assert ann.parent == tmp_path / "ann" / day() and bob.parent == tmp_path / "bob" / day()
    assert anyone.parent == tmp_path / day()  # without a login: today's place
    assert odd.resolve().is_relative_to(tmp_path.resolve()) and not (tmp_path.parent / "x").exists()
    assert outputs.read_parameters(ann)["prompt"] == "ann fox"  # the PNG's parameters as before

    def names(owner: str | None) -> set[str]:
        return {p.name for p in outputs.saved_images(tmp_path, owner=owner)}

    assert names("ann") == {ann.name}
    assert names("bob") == {bob.name}
    assert names("../x") == {odd.name}
    assert names("carol") == set()  # a login with nothing saved yet
    assert names(None) == {ann.name, bob.name, odd.name, anyone.name}


def test_a_symlinked_login_folder_is_not_listed(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "secret.png")
    (out / "eve").symlink_to(outside, target_is_directory=True)
    assert outputs.saved_images(out, owner="eve") == []


def test_admins_see_everything_through_the_manager(tmp_path):
    manager = AIModelManager(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path), hardware=CPU,
                             start_monitor=False, admins=["root"])
    image = Image.new("RGB", (8, 8), "blue")
    for owner in ("ann", "bob"):
        outputs.save_image(image, {"prompt": owner, "seed": 1}, tmp_path, owner)
    assert [p.parent.parent.name for p in manager.saved_images(owner="ann")] == ["ann"]
    assert len(manager.saved_images(owner="root")) == 2
    assert len(manager.saved_images()) == 2


def test_a_login_s_video_and_keyframes_are_saved_in_its_folder(settings):
    manager = AIModelManager(settings, hardware=CPU)
    try:
        result = run_coroutine(manager.generate_video(["a harbour", "boats"], quality="draft", width=64, height=64,
                                                      steps=2, fps=4, duration=1, owner="ann"))
        assert result["status"] == "success", result.get("error")
        folder = Path(settings.output_dir) / "ann" / day()
        made = [result["video"], result["storyboard_path"], *result["keyframes"]]
        assert len(made) == 4 and all(Path(path).parent == folder for path in made), made
        assert [p.name for p in manager.saved_images(owner="bob")] == []
    finally:
        manager.shutdown()


def test_admin_flag_checks_its_names():
    from ui.launcher import parse_args

    args = parse_args(["--auth", "ann:a1,root:r3", "--admin", "root"])
    assert args.admins == {"root"}
    assert parse_args(["--auth", "ann:a1"]).admins == frozenset()
    with pytest.raises(SystemExit):
        parse_args(["--auth", "ann:a1", "--admin", "zed"])


# -- through the app ----------------------------------------------------------------------------

def log_in(page, url: str, user: str, password: str) -> None:
    """Gradio's login form, then the app."""
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#backend-badge")
    page.wait_for_selector("#generate")


def generate(page, prompt: str) -> None:
    fill_image_form(page, prompt)
    page.click("#generate")
    wait_progress(page, "Done", timeout_ms=90_000)


def gallery_sources(page, expected: int) -> list[str]:
    """The outputs gallery's image sources after "Show the newest saved images"."""
    page.get_by_role("tab", name="Outputs folder").click()
    page.click("#load-outputs")
    page.wait_for_selector("#outputs-gallery .thumbnail-item img")
    thumbs = page.locator("#outputs-gallery .thumbnail-item")
    # one update fills the gallery: a listing that wrongly has more shows it at once
    wait_until(lambda: thumbs.count() >= expected + 1, 0.3)
    return [img.get_attribute("src") or "" for img in page.locator("#outputs-gallery .thumbnail-item img").all()]


@needs_chromium
def test_a_second_login_cannot_see_the_first_ones_outputs(login_app, new_page):
    url, out = login_app.url, login_app.output_dir

    ann = new_page(own_context=True)
    log_in(ann, url, "ann", "a1")
    generate(ann, "anns red fox")
    bob = new_page(own_context=True)  # another browser context: another login
    log_in(bob, url, "bob", "b2")
    generate(bob, "bobs blue boat")

    seen = gallery_sources(bob, 1)
    assert len(seen) == 1, seen
    assert "bobs-blue-boat" in seen[0] and not any("anns-red-fox" in src for src in seen), seen
    seen = gallery_sources(ann, 1)
    assert len(seen) == 1 and "anns-red-fox" in seen[0], seen

    ann_files = sorted((out / "ann" / day()).glob("*.png"))
    bob_files = sorted((out / "bob" / day()).glob("*.png"))
    assert len(ann_files) == 1 and ann_files[0].name in seen[0]
    assert len(bob_files) == 1 and "bobs-blue-boat" in bob_files[0].name

    # a login named "../x", through the API: saved inside the outputs folder, in a folder of its own
    info = Client(url, auth=("../x", "x4"), verbose=False).predict(
        "odd login", width=64, height=64, num_inference_steps=2, seed=5, api_name="/generate_image")[1]
    saved = Path(info["saved_path"])
    assert saved.parent == out / outputs.owner_folder_name("../x") / day(), saved
    assert saved.resolve().is_relative_to(out.resolve()) and not (out.parent / "x").exists()
    assert info["seed"] == 5 and info["prompt"] == "odd login"  # the API's result as before

    root = new_page(own_context=True)
    log_in(root, url, "root", "r3")
    everyone = sorted(out.rglob("*.png"))  # (the module's other test may have saved one for cy)
    seen = gallery_sources(root, len(everyone))
    assert len(seen) == len(everyone) >= 3, seen
    for name in (ann_files[0].name, bob_files[0].name, saved.name):
        assert any(name in src for src in seen), (name, seen)
    # every PNG the app wrote is inside a login's folder; none at the top or outside
    written = {p.relative_to(out).parts[0] for p in everyone}
    assert {"ann", "bob", outputs.owner_folder_name("../x")} <= written <= {"ann", "bob", "cy",
                                                                          outputs.owner_folder_name("../x")}


def test_without_a_login_results_stay_where_they_were(local_app):
    _, info = Client(local_app.url, verbose=False).predict(
        "no login here", width=64, height=64, num_inference_steps=2, seed=7, api_name="/generate_image")
    saved = Path(info["saved_path"])
    assert saved.parent == local_app.output_dir / day()
    assert saved in local_app.manager.saved_images(500)


def test_a_login_cannot_download_another_login_s_file_by_its_path(login_app):
    import httpx

    url = login_app.url

    def session(user: str, password: str) -> httpx.Client:
        client = httpx.Client(base_url=url, timeout=30)
        assert client.post("login", data={"username": user, "password": password}).status_code == 200
        return client

    _, info = Client(url, auth=("cy", "c5"), verbose=False).predict(
        "cy's lighthouse", width=64, height=64, num_inference_steps=1, api_name="/generate_image")
    path = info["saved_path"]
    assert f"/cy/{day()}/" in path
    cy, bob, root = session("cy", "c5"), session("bob", "b2"), session("root", "r3")
    assert cy.get(f"gradio_api/file={path}").status_code == 200
    for route in ("gradio_api/file=", "file=", "gradio_api/file/", "gradio_api/file//", "file/"):  # every route
        refused = bob.get(f"{route}{path}")
        assert refused.status_code == 403 and refused.json()["error"] == "This file belongs to another login.", route
    assert cy.get(f"gradio_api/file/{path}").status_code == 200
    assert root.get(f"gradio_api/file={path}").status_code == 200  # an admin sees everyone's
    assert httpx.get(f"{url}gradio_api/file={path}", timeout=30).status_code in (401, 403)  # nobody logged in
