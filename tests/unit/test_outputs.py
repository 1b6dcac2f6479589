"""The outputs folder as a whole: sweeping a crashed run's leftovers, and listing saved images safely."""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from PIL import Image

from engine.manager import AIModelManager
from engine.outputs import SweepReport, saved_images, save_image, sweep_leftovers
from tests.conftest import CPU

ROUGHLY_6_MB = 6 * 1024 * 1024


def storyboard(status: str) -> dict:
    """A storyboard JSON as engine/video.py writes it (scenes plus the render's result)."""
    return {"title": "harbour", "fps": 8, "scenes": [{"prompt": "a harbour at dawn", "duration": 1.0}],
            "render": {"status": status, "error": None, "video": None, "keyframes": [], "timings": {}}}


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def png(path: Path, colour: str = "red", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- sweep_leftovers ----------------------------------------------------------------------------
def test_sweep_removes_partial_files_and_marks_rendering_storyboards(tmp_path):
    out = tmp_path / "outputs"
    day = out / "2024-05-01"
    day.mkdir(parents=True)
    partials = {day / "120000-1-fox.png.part": ROUGHLY_6_MB, day / "120001-video-harbour.part.mp4": 1000,
                day / "120001-video-harbour.part.gif": 500, day / "120001-video-harbour.json.part": 20}
    for path, size in partials.items():
        path.write_bytes(b"\0" * size)
    rendering = write_json(day / "120001-video-harbour.json", storyboard("rendering"))
    finished = write_json(day / "110000-video-done.json", storyboard("success"))
    other = write_json(day / "notes.json", {"render": "rendering"})  # says "rendering", is no storyboard of ours
    image = save_image(Image.new("RGB", (8, 8), "blue"), {"prompt": "a fox", "seed": 1}, out)
    untouched = {p: p.read_bytes() for p in (finished, other, image)}

    before = datetime.now().astimezone().replace(microsecond=0)
    report = sweep_leftovers(out)

    assert isinstance(report, SweepReport) and report.found
    assert sorted(report.removed) == sorted(p.resolve() for p in partials)
    assert report.removed_bytes == sum(partials.values())
    assert report.interrupted == (rendering.resolve(),) and report.failed == ()
    assert not any(p.exists() for p in partials)
    render = json.loads(rendering.read_text())["render"]
    assert render["status"] == "interrupted"
    assert datetime.fromisoformat(render["interrupted_at"]) >= before
    assert render["error"] and json.loads(rendering.read_text())["scenes"] == storyboard("rendering")["scenes"]
    assert {p: p.read_bytes() for p in untouched} == untouched
    assert report.notice == ("Cleaned up after an interrupted run: removed 4 partial files (6.3 MB), "
                             "marked 1 storyboard interrupted.")
    assert str(out) not in report.notice
    # nothing else is left in the folder: no temp file beside the storyboard
    assert sorted(p.name for p in day.iterdir()) == sorted([rendering.name, finished.name, other.name])
    assert not list(out.rglob("*.part*"))


def test_a_second_sweep_finds_nothing(tmp_path):
    out = tmp_path / "outputs"
    (out / "day").mkdir(parents=True)
    (out / "day" / "a.png.part").write_bytes(b"x")
    write_json(out / "day" / "b.json", storyboard("rendering"))
    assert sweep_leftovers(out).found
    marked = (out / "day" / "b.json").read_text()
    again = sweep_leftovers(out)
    assert again == SweepReport() and not again.found and again.notice == ""
    assert (out / "day" / "b.json").read_text() == marked


def test_sweep_never_follows_symlinks_out_of_the_folder(tmp_path):
    out, outside = tmp_path / "outputs", tmp_path / "elsewhere"
    (out / "day").mkdir(parents=True)
    outside.mkdir()
    target_part = outside / "server.png.part"
    target_part.write_bytes(b"keep me")
    target_json = write_json(outside / "board.json", storyboard("rendering"))
    (outside / "video.part.mp4").write_bytes(b"keep me too")
    (out / "day" / "linked.png.part").symlink_to(target_part)
    (out / "day" / "linked.json").symlink_to(target_json)
    (out / "linked-folder").symlink_to(outside, target_is_directory=True)

    report = sweep_leftovers(out)

    assert report == SweepReport()
    assert target_part.read_bytes() == b"keep me" and (outside / "video.part.mp4").exists()
    assert json.loads(target_json.read_text())["render"]["status"] == "rendering"
    assert (out / "day" / "linked.png.part").is_symlink() and (out / "linked-folder").is_symlink()


def test_sweep_logs_and_skips_what_it_cannot_handle(tmp_path, caplog):
    out = tmp_path / "outputs"
    stuck = write_json(out / "day" / "stuck.json", storyboard("rendering"))
    (out / "day" / "stuck.json.part").mkdir()  # the temp file cannot be written: even root gets an OSError
    binary = out / "day" / "binary.json"
    binary.write_bytes(b'\xff\xfe "rendering" \x00')  # not UTF-8, not JSON
    (out / "day" / "c.part.mp4").write_bytes(b"x" * 10)

    with caplog.at_level(logging.INFO, logger="engine.outputs"):
        report = sweep_leftovers(out)

    assert report.failed == (stuck.resolve(),)
    assert report.removed == ((out / "day" / "c.part.mp4").resolve(),) and report.interrupted == ()
    assert json.loads(stuck.read_text())["render"]["status"] == "rendering"
    assert binary.read_bytes().startswith(b"\xff\xfe")
    assert report.notice == ("Cleaned up after an interrupted run: removed 1 partial file (10 bytes); "
                             "1 file could not be cleaned up (see the log).")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("stuck.json" in r.getMessage() for r in warnings)
    assert sum(r.getMessage() == report.notice for r in warnings) == 1


def test_sweep_of_a_missing_folder_or_a_file_is_empty(tmp_path):
    assert sweep_leftovers(tmp_path / "nothing-here") == SweepReport()
    (tmp_path / "a-file").write_text("x")
    assert sweep_leftovers(tmp_path / "a-file") == SweepReport()


# -- saved_images -------------------------------------------------------------------------------
def test_saved_images_lists_regular_files_newest_first(tmp_path):
    out = tmp_path / "outputs"
    old = png(out / "2024-05-01" / "old.png", mtime=1_700_000_000)
    mid = png(out / "2024-05-02" / "mid.png", mtime=1_700_000_100)
    new = png(out / "2024-05-03" / "new.png", mtime=1_700_000_200)
    (out / "2024-05-03" / "half.png.part").write_bytes(b"x")
    write_json(out / "2024-05-03" / "board.json", storyboard("success"))

    assert saved_images(out, 10) == [new.resolve(), mid.resolve(), old.resolve()]
    assert saved_images(out, 2) == [new.resolve(), mid.resolve()]
    assert saved_images(out, 0) == []
    assert saved_images(tmp_path / "nothing-here", 10) == []


def test_saved_images_never_lists_a_symlink(tmp_path):
    out, outside = tmp_path / "outputs", tmp_path / "server"
    real = png(out / "day" / "real.png")
    secret = png(outside / "secret.png", "green")
    png(outside / "more" / "deep.png", "green")
    (out / "day" / "link-out.png").symlink_to(secret)
    (out / "day" / "link-in.png").symlink_to(real)
    (out / "linked-folder").symlink_to(outside, target_is_directory=True)
    (out / "day" / "linked-day").symlink_to(out / "day", target_is_directory=True)  # a loop, too

    assert saved_images(out, 60) == [real.resolve()]


def test_saved_images_through_a_linked_outputs_folder(tmp_path):
    real_out = tmp_path / "disk" / "outputs"
    image = png(real_out / "day" / "a.png")
    (tmp_path / "outputs").symlink_to(real_out, target_is_directory=True)  # the configured folder may be a link
    assert saved_images(tmp_path / "outputs", 60) == [image.resolve()]


# -- through the manager ------------------------------------------------------------------------
async def test_manager_sweeps_once_at_start_and_says_so(settings, caplog):
    day = Path(settings.output_dir) / "2024-05-01"
    day.mkdir(parents=True)
    (day / "a.png.part").write_bytes(b"\0" * 2_000_000)
    write_json(day / "b.json", storyboard("rendering"))
    image = png(day / "c.png")
    manager = AIModelManager(settings, hardware=CPU, start_monitor=False)
    with caplog.at_level(logging.INFO):
        await manager.initialize_models()
        await manager.initialize_models()  # idempotent: no second sweep
    try:
        notice = ("Cleaned up after an interrupted run: removed 1 partial file (2.0 MB), "
                  "marked 1 storyboard interrupted.")
        assert manager.status()["notices"].count(notice) == 1
        assert manager.status()["notices"].count(notice) == 1  # asking again does not repeat it
        assert sum(notice in r.getMessage() for r in caplog.records) == 1
        assert not (day / "a.png.part").exists()
        assert manager.saved_images(10) == [image.resolve()]
    finally:
        manager.shutdown()


async def test_a_clean_folder_gives_no_notice(manager):
    assert not any("interrupted run" in n for n in manager.status()["notices"])


def one_second(monkeypatch) -> None:
    """Every save names its file as at 12:00:00 (the clock a file's name begins with)."""
    import time

    real = time.strftime
    monkeypatch.setattr("engine.outputs.time.strftime",
                        lambda form, *when: "120000" if form == "%H%M%S" else real(form, *when))


def test_saves_at_the_same_moment_with_the_same_name_each_keep_their_own_file(tmp_path, monkeypatch):
    """Parallel requests with one prompt and seed, saved in the same second: every image gets its own name, none is
    replaced or lost, and no partial file stays."""
    from concurrent.futures import ThreadPoolExecutor

    one_second(monkeypatch)

    colours = [(i * 20, 0, 0) for i in range(12)]
    params = {"prompt": "a cat", "seed": 1, "width": 8, "height": 8}
    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda colour: save_image(Image.new("RGB", (8, 8), colour), params, tmp_path),
                              colours))
    assert len(set(paths)) == len(colours)
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x")
    assert {p.stat().st_mode & 0o777 for p in paths} == {ordinary.stat().st_mode & 0o777}  # readable as any file
    assert sorted(Image.open(p).getpixel((0, 0)) for p in paths) == sorted(colours)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_a_save_where_hard_links_are_refused_still_takes_a_free_name(tmp_path, monkeypatch):
    one_second(monkeypatch)

    def refuse(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")

    first = save_image(Image.new("RGB", (8, 8), "red"), {"prompt": "a cat", "seed": 1}, tmp_path)
    monkeypatch.setattr(os, "link", refuse)  # a file system without hard links (FAT, some network shares)
    second = save_image(Image.new("RGB", (8, 8), "blue"), {"prompt": "a cat", "seed": 1}, tmp_path)
    assert second.name == "120000-1-a-cat-1.png" and Image.open(first).getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(second).getpixel((0, 0)) == (0, 0, 255)
