"""The Video storyboard tab: the scene table's data, and in a real browser the table's editing, keyframes
streaming in scene by scene, the mp4 playing in Chromium and the three downloads."""
from __future__ import annotations

import random
import tracemalloc
from types import SimpleNamespace

import pytest
import yaml

from engine.limits import Limits
from engine.storyboard import Storyboard, scene_seeds
from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, set_number, set_number_settled, wait_progress,
                               wait_text, wait_until)
from ui.scene_table import (add_row, apply_seed_policy, clicked_scene, move_row, remove_row, rows_from_prompts,
                            rows_from_storyboard, rows_of, scenes_of)
from ui.sessions import JobLimits, Jobs
from ui.video_tab import EXAMPLE_YAML, VideoTabHandlers, scene_prompts, table_request, table_storyboard


# -- the scene table as data (no browser) ------------------------------------------------------------

def test_table_rows_edit_and_reorder():
    rows = rows_from_prompts("one\n\n  two \nthree\n", 1.5, "cut")
    assert rows == [["one", "", "1.5", "cut", ""], ["two", "", "1.5", "cut", ""], ["three", "", "1.5", "cut", ""]]
    assert rows_of([["a", None, 2.0, "cut", float("nan")], ["", "", "", "", ""], ["b"]]) == [
        ["a", "", "2", "cut", ""], ["b", "", "", "", ""]]
    assert rows_of({"data": [["x", "", "1", "", ""]], "headers": []}) == [["x", "", "1", "", ""]]
    moved, sel = move_row(rows, 2, -1)
    assert [r[0] for r in moved] == ["one", "three", "two"] and sel == 1
    moved, sel = move_row(moved, 0, -1)  # already first: stays
    assert [r[0] for r in moved] == ["one", "three", "two"] and sel == 0
    assert move_row(rows, None, 1) == (rows, None)
    added, sel = add_row(rows, 0)
    assert [r[0] for r in added] == ["one", "", "two", "three"] and sel == 1
    added, sel = add_row(rows, None)
    assert sel == 3 and added[3] == ["", "", "2", "crossfade", ""]
    removed, sel = remove_row(rows, 1)
    assert [r[0] for r in removed] == ["one", "three"] and sel == 1
    removed, sel = remove_row(rows, None)
    assert [r[0] for r in removed] == ["one", "two"] and sel is None
    assert remove_row([], 0) == ([], None)


def test_a_click_picks_the_scene_it_is_on_with_empty_rows_between():
    table = [["a", "", "2", "cut", ""], ["", "", "", "", ""], ["c", "", "2", "cut", ""], ["d", "", "2", "cut", ""]]
    assert [clicked_scene(table, [row, 0]) for row in range(4)] == [0, None, 1, 2]  # "c" is the second scene
    assert clicked_scene(table, [9, 0]) is None and clicked_scene(table, None) is None


def test_table_becomes_the_engines_storyboard():
    table = [["a harbour", "", "1.5", "crossfade", ""], ["boats", "blurry", "2", "seed travel", ""]]
    board = table_storyboard(table, "text", "draft", 0.25, 64.0, 64.0, 8.0, 2.0, 7.0, "increment", "auto", " T ")
    assert board == {"scenes": [
        {"prompt": "a harbour", "negative_prompt": "text", "duration": 1.5, "transition": "crossfade",
         "transition_duration": 0.25, "seed": None},
        {"prompt": "boats", "negative_prompt": "blurry", "duration": 2, "transition": "seed travel",
         "transition_duration": 0.25, "seed": None}],
        "quality": "draft", "seed_policy": "increment", "seed": 7, "width": 64, "height": 64, "steps": 2,
        "fps": 8.0, "title": "T"}
    parsed = Storyboard.from_dict(board).validate()
    assert [s.transition for s in parsed.scenes] == ["crossfade", "seed_travel"]
    assert parsed.total_duration == 3.5
    # the form's request: the table, unless the YAML box is filled
    kwargs = table_request(table, "", "", "draft", 0.5, None, None, None, None, -1, "increment", "auto", "")
    assert kwargs["video_type"] == "storyboard" and "seed" not in kwargs["storyboard"]
    assert scene_prompts(kwargs) == ["a harbour", "boats"]
    kwargs = table_request(table, "", EXAMPLE_YAML, "draft", 0.5, None, None, 12.0, None, -1, "increment", "", "")
    assert kwargs == {"storyboard": EXAMPLE_YAML, "video_type": "storyboard", "fps": 12.0}
    assert len(scene_prompts(kwargs)) == 2


def test_a_seed_in_a_row_wins_and_the_rest_follow_the_policy():
    scenes = scenes_of([["a", "", "", "", ""], ["b", "", "", "", "42"], ["c", "", "", "", "-1"]])
    assert [s["seed"] for s in scenes] == [None, 42, None] and "duration" not in scenes[0]
    assert apply_seed_policy(scenes, 100, "increment") == (100, "per_scene")
    assert [s["seed"] for s in scenes] == [100, 42, 102]
    scenes = scenes_of([["a", "", "", "", ""], ["b", "", "", "", "42"]])
    base, policy = apply_seed_policy(scenes, None, "fixed", random.Random(1))
    assert policy == "per_scene" and [s["seed"] for s in scenes] == [base, 42]
    scenes = scenes_of([["a", "", "", "", ""]])
    assert apply_seed_policy(scenes, None, "fixed") == (None, "fixed")  # no row seeds: untouched


@pytest.mark.parametrize("policy", ["fixed", "increment"])
@pytest.mark.parametrize("base", [7, -1])
def test_the_table_and_the_engine_give_the_same_seeds(policy, base):
    typed = [["a", "", "", "", ""], ["b", "", "", "", "42"], ["c", "", "", "", ""]]
    plain = [row[:4] + [""] for row in typed]
    args = ("", "draft", 0.5, None, None, None, None, base, policy, "auto", "")
    # no typed seed: the board keeps the policy and the engine draws the seeds
    engine_seeds = Storyboard.from_dict(table_storyboard(plain, *args)).resolve_seeds(random.Random(4))
    assert engine_seeds == scene_seeds(policy, base, [None] * 3, random.Random(4))
    # a typed seed: the table fills the other rows with the very seeds the engine would have used
    board = table_storyboard(typed, *args, rng=random.Random(4))
    assert board["seed_policy"] == "per_scene"
    assert Storyboard.from_dict(board).resolve_seeds() == [engine_seeds[0], 42, engine_seeds[2]]


@pytest.mark.parametrize("row, sentence", [
    (["", "", "2", "cut", ""], "Scene 1 has an empty prompt"),
    (["a", "", "abc", "cut", ""], "Scene 1's duration must be a number of seconds (got 'abc')"),
    (["a", "", "0", "cut", ""], "Scene 1's duration must be more than 0 seconds"),
    (["a", "", "-2", "cut", ""], "Scene 1's duration must be more than 0 seconds"),
    (["a", "", "2", "wipe", ""], "Scene 1's transition must be one of cut, crossfade or seed travel (got 'wipe')"),
    (["a", "", "2", "cut", "1.5"], "Scene 1's seed must be -1 (random) or a whole number"),
])
def test_bad_rows_get_the_engines_sentence(row, sentence):
    board = table_storyboard([row], "", "draft", 0.5, None, None, None, None, -1, "increment", "auto", "")
    problems = " ".join(Storyboard.from_dict(board).problems())
    assert sentence in problems, problems
    empty = table_storyboard([], "", "draft", 0.5, None, None, None, None, -1, "increment", "auto", "")
    assert "no scenes" in " ".join(Storyboard.from_dict(empty).problems())


def test_yaml_round_trips_through_the_table():
    board = Storyboard.parse(EXAMPLE_YAML)
    rows = rows_from_storyboard(board)
    assert rows == [["a quiet harbour at dawn, mist over the water", "", "2", "crossfade", ""],
                    ["fishing boats leaving the harbour, golden light", "", "2", "cut", ""]]
    again = table_storyboard(rows, "", board.quality, 0.5, None, None, board.fps, None, -1, board.seed_policy,
                             "auto", board.title)
    data = yaml.safe_load(Storyboard.from_dict(again).dumps())
    assert [s["prompt"] for s in data["scenes"]] == [s.prompt for s in board.scenes]
    assert data["fps"] == 8 and data["title"] == "A day at the harbour"
    per_scene = Storyboard.from_dict({"seed_policy": "per_scene", "scenes": [{"prompt": "x", "seed": 5},
                                                                             {"prompt": "y", "seed": -1}]})
    assert [r[4] for r in rows_from_storyboard(per_scene)] == ["5", ""]


def test_loading_says_what_the_table_cannot_hold_and_clears_the_negative_box():
    handlers = VideoTabHandlers(SimpleNamespace(), None)
    handlers.components = type("Names", (dict,), {"__missing__": lambda self, key: key})()
    board = ("guidance_scale: 6.5\nscenes:\n  - {prompt: a, transition: crossfade, transition_duration: 0.25}\n"
             "  - {prompt: b, transition: crossfade, transition_duration: 1.5}\n  - {prompt: c}\n")
    update = handlers.load_yaml(board)
    assert update["negative"] == "" and len(update["table"]) == 3
    assert "cannot hold its guidance scale 6.5" in update["progress"]
    assert "transition lengths per scene (0.25 s, 1.5 s: the table uses 0.25 s" in update["progress"]
    plain = handlers.load_yaml(EXAMPLE_YAML)
    assert "cannot hold" not in plain["progress"]


def opener(max_chars: int) -> VideoTabHandlers:
    """The tab's handlers with only the storyboard limit behind them (open_file needs nothing else)."""
    manager = SimpleNamespace(limits=Limits(max_storyboard_chars=max_chars))
    handlers = VideoTabHandlers(manager, None)
    handlers.components = {}
    return handlers


async def test_stop_reaches_a_render_still_waiting_for_a_slot():
    handlers = VideoTabHandlers(SimpleNamespace(), Jobs(JobLimits()))  # a render that started would need a manager
    handlers.components = type("Names", (dict,), {"__missing__": lambda self, key: key})()  # each by its name
    me, other = SimpleNamespace(session_hash="me"), SimpleNamespace(session_hash="other")
    line, mine = handlers.ask()
    assert "Waiting for a free render slot" in line
    _, others = handlers.ask()
    await handlers.stop(me)  # pressed while its render waits behind two others
    _, again = handlers.ask()  # Render pressed again at once: a render of its own, not stopped
    form = (None, "", "", "draft", 0.5, 64, 64, 4, 2, -1, "increment", "auto", "", False, False)
    updates = [update async for update in handlers.render(*form, mine, request=me)]
    assert updates == [{"progress": "Stopped. The render was stopped before it started."}]  # though asked again
    for asked, who in ((others, other), (again, me)):  # another session's render, and the one asked after Stop
        going_on = handlers.render(*form, asked, request=who)
        first = await going_on.__anext__()
        await going_on.aclose()
        assert "Stopped" not in first["progress"]


def test_an_opened_file_is_read_only_as_far_as_the_limit(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(64 * 1024 * 1024)  # 64 MB, sparse
    tracemalloc.start()
    try:
        text, message = opener(1000).open_file(str(big))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.startswith("Failed: The storyboard is too long:") and "the limit is 1,000" in message
    assert peak < 1024 * 1024, peak


@pytest.mark.parametrize("character", ["港", "🦊"])  # 3 and 4 bytes in UTF-8
def test_a_long_file_cut_inside_a_character_is_too_long_not_garbled(tmp_path, character):
    path = tmp_path / "board.yaml"
    path.write_text("title: x\nscenes:\n" + f"  - {character * 7}\n" * 40, encoding="utf-8")
    text, message = opener(100).open_file(str(path))
    assert message.startswith("Failed: The storyboard is too long:") and "the limit is 100" in message, message
    exact = tmp_path / "exact.yaml"
    exact.write_text(character * 100, encoding="utf-8")  # as many characters as the limit: opened whole
    text, message = opener(100).open_file(str(exact))
    assert text == character * 100 and message.startswith("Storyboard file opened")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"scenes: [a]\n\xff\xfe" + b"x" * 1000)  # not UTF-8, and cut off after the limit
    assert opener(100).open_file(str(binary))[1] == ("Failed: The uploaded file is not UTF-8 text; upload a .yaml or "
                                                     ".json storyboard.")


# -- in the browser ------------------------------------------------------------------------------------

def open_video_tab(page, url: str) -> None:
    open_app(page, url)
    page.get_by_role("tab", name="Video storyboard").click()
    page.wait_for_selector("#video-render")


def cell(page, row: int, col: int):
    return page.locator(f'#video-scenes [data-testid="cell-{row}-{col}"]')


def set_cell(page, row: int, col: int, text: str) -> None:
    target = cell(page, row, col)
    target.dblclick()
    editor = target.locator("textarea")
    editor.fill(text)
    editor.press("Enter")
    page.wait_for_function("([r, c, t]) => document.querySelector("
                           "`#video-scenes [data-testid=\"cell-${r}-${c}\"] span[data-editable]`)?.innerText.trim() === t",
                           arg=[row, col, text])


def select_scene(page, row: int, says: str) -> None:
    """Click a scene's prompt cell until the selection line names it (a click right after an edit can land while
    the table is still taking the edit, and select nothing)."""
    for _ in range(4):
        cell(page, row, 0).click()
        if wait_until(lambda: says in page.locator("#video-selection").inner_text(), 5):
            return
    raise AssertionError(f"the selection never said {says!r}: {page.locator('#video-selection').inner_text()!r}")


def table_prompts(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('#video-scenes [role=gridcell][data-col="0"] span[data-editable]')]
        .map(c => c.innerText.trim())""")


def click_and_wait_rows(page, button: str, expected: list[str]) -> None:
    page.click(button)
    page.wait_for_function("""(want) => JSON.stringify([...document.querySelectorAll(
        '#video-scenes [role=gridcell][data-col="0"] span[data-editable]')].map(c => c.innerText.trim()))
        === JSON.stringify(want)""",
                           arg=expected)


def small_settings(page, steps: int = 2) -> None:
    """Small, fast video settings; each box checked to keep its value (typing while the box still opens can lose
    it: a storyboard then rendered at the preset's 16 frames per second)."""
    page.locator("#video-more").get_by_text("More settings").click()
    page.locator("#video-steps input").wait_for(state="visible")
    for elem_id, value in (("video-width", 64), ("video-height", 64), ("video-fps", 8), ("video-steps", steps)):
        set_number_settled(page, elem_id, value)


def paste_prompts(page, prompts: str, seconds: float = 1) -> None:
    page.locator("#video-paste-box").get_by_text("Paste prompts").click()
    page.locator("#video-paste textarea").fill(prompts)
    set_number_settled(page, "video-paste-seconds", seconds)  # the box has just opened (a lost value: 2 s scenes)
    page.click("#video-paste-replace")
    count = len([p for p in prompts.splitlines() if p.strip()])
    page.wait_for_selector(f'#video-scenes [data-testid="cell-{count - 1}-0"]')


def video_progress(page) -> str:
    return page.locator("#video-progress").inner_text()


def wait_video_progress(page, needle: str, timeout_ms: int = 20_000) -> str:
    return wait_text(page, "video-progress", needle, timeout_ms)


def keyframe_captions(page) -> list[str]:
    return page.locator("#video-keyframes .grid-container .caption-label").all_inner_texts()


def play_video(page) -> dict:
    page.wait_for_selector("#video-output video")
    return page.evaluate("""async () => {
        const v = document.querySelector('#video-output video');
        v.muted = true;
        if (v.readyState < 1) await new Promise(r => { v.addEventListener('loadedmetadata', r, {once: true});
                                                        setTimeout(r, 5000); });
        try { await v.play(); } catch (e) { return {error: String(e)}; }
        await new Promise(r => setTimeout(r, 600));
        return {duration: v.duration, time: v.currentTime, width: v.videoWidth, src: v.currentSrc, error: v.error};
    }""")


@needs_chromium
def test_scene_table_edit_reorder_render_and_download(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    for n in range(3):
        page.click("#video-add-scene")
        page.wait_for_selector(f'#video-scenes [data-testid="cell-{n}-0"]')
    for row, (prompt, seconds) in enumerate([("alpha", "1"), ("bravo", "2"), ("charlie", "1.5")]):
        set_cell(page, row, 0, prompt)
        set_cell(page, row, 2, seconds)
    page.locator("#video-scenes th").first.hover()  # a scene's five fields are fixed: no column menu to add or
    assert page.locator("#video-scenes th .cell-menu-button").count() == 0  # delete one, nor to sort the story
    set_cell(page, 1, 3, "cut")
    # select charlie, move it up; then select alpha and move it down
    select_scene(page, 2, "3. charlie")
    click_and_wait_rows(page, "#video-move-up", ["alpha", "charlie", "bravo"])
    select_scene(page, 0, "1. alpha")
    click_and_wait_rows(page, "#video-move-down", ["charlie", "alpha", "bravo"])
    # a scene added after the selection, then removed again
    click_and_wait_rows(page, "#video-add-scene", ["charlie", "alpha", "", "bravo"])
    set_cell(page, 2, 0, "delta")
    select_scene(page, 2, "3. delta")
    click_and_wait_rows(page, "#video-remove-scene", ["charlie", "alpha", "bravo"])

    small_settings(page)
    page.locator("#video-use-ai input").uncheck()
    page.locator("#video-gif input").check()
    page.click("#video-render")
    assert "36 frames" in wait_video_progress(page, "Video ready")  # (1.5 + 1 + 2) s at 8 fps
    state = play_video(page)
    assert state.get("error") is None, state
    assert abs(state["duration"] - 4.5) < 0.3 and state["width"] == 64 and state["time"] > 0, state
    assert keyframe_captions(page) == ["1. charlie", "2. alpha", "3. bravo"]
    assert page.locator("#video-keyframes .grid-container .thumbnail-item").count() == 3
    for button in ("#video-mp4-download", "#video-gif-download", "#video-storyboard-download"):
        assert page.locator(button).is_visible(), button
    # each download serves its file
    for button, suffix in (("#video-mp4-download", ".mp4"), ("#video-gif-download", ".gif"),
                           ("#video-storyboard-download", ".json")):
        with page.expect_download() as info:
            page.click(button)
        assert info.value.suggested_filename.endswith(suffix), info.value.suggested_filename
    saved = sorted(local_app.output_dir.rglob("*.json"), key=lambda p: p.stat().st_mtime)[-1]
    assert [s["prompt"] for s in yaml.safe_load(saved.read_text())["scenes"]] == ["charlie", "alpha", "bravo"]


@needs_chromium
def test_storyboard_streams_keyframes_and_plays(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    paste_prompts(page, "a harbour at dawn\nboats leaving the harbour\nthe harbour at night")
    assert table_prompts(page) == ["a harbour at dawn", "boats leaving the harbour", "the harbour at night"]
    small_settings(page)
    page.evaluate("""() => { window.__lines = []; window.__counts = [];
        const note = () => { const t = document.querySelector('#video-progress').innerText.trim();
            if (window.__lines[window.__lines.length - 1] !== t) window.__lines.push(t);
            const n = document.querySelectorAll('#video-keyframes .grid-container .thumbnail-item').length;
            if (window.__counts[window.__counts.length - 1] !== n) window.__counts.push(n); };
        new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.click("#video-render")
    wait_video_progress(page, "Video ready", timeout_ms=60_000)
    lines, counts = page.evaluate("window.__lines"), page.evaluate("window.__counts")
    assert any("Keyframe 3/3" in line for line in lines), lines
    assert any("step" in line for line in lines), lines
    assert "24 frames" in video_progress(page)
    # the thumbnails came in one scene at a time, before the video was ready
    assert counts[:4] == [0, 1, 2, 3], counts
    state = play_video(page)
    assert state.get("error") is None, state
    assert abs(state["duration"] - 3.0) < 0.3 and state["width"] == 64 and state["time"] > 0, state
    assert state["src"].endswith(".mp4")
    assert keyframe_captions(page) == ["1. a harbour at dawn", "2. boats leaving the harbour",
                                       "3. the harbour at night"]
    assert page.locator("#video-mp4-download").is_visible()
    assert page.locator("#video-storyboard-download").is_visible()
    assert not page.locator("#video-gif-download").is_visible()  # no GIF asked for


@needs_chromium
def test_bad_table_input_says_what_to_fix(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    page.click("#video-render")
    wait_video_progress(page, "no scenes")
    page.click("#video-add-scene")
    page.click("#video-render")
    wait_video_progress(page, "Scene 1 has an empty prompt")
    set_cell(page, 0, 0, "Chapter one")
    set_cell(page, 0, 2, "soon")
    page.click("#video-render")
    wait_video_progress(page, "Scene 1's duration must be a number of seconds (got 'soon')")
    set_cell(page, 0, 2, "0")
    set_cell(page, 0, 3, "wipe")
    page.click("#video-render")
    text = wait_video_progress(page, "transition must be one of")
    assert "more than 0 seconds" in text and "'wipe'" in text
    assert "Traceback" not in page.locator("body").inner_text()
    # fixed: title cards need no model and still give a video
    set_cell(page, 0, 2, "1")
    set_cell(page, 0, 3, "seed travel")
    page.click("#video-add-scene")
    page.wait_for_selector('#video-scenes [data-testid="cell-1-0"]')
    set_cell(page, 1, 0, "Chapter two")
    small_settings(page)
    page.locator("#video-use-ai input").uncheck()
    page.click("#video-render")
    assert "24 frames" in wait_video_progress(page, "Video ready")  # 1 s + 2 s at 8 fps
    assert keyframe_captions(page) == ["1. Chapter one", "2. Chapter two"]


@needs_chromium
def test_yaml_loads_into_the_table_and_the_table_saves_as_yaml(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    page.locator("#video-yaml-box").get_by_text("Storyboard file (YAML)").click()
    page.click("#video-save")
    wait_video_progress(page, "no scenes")
    page.click("#video-yaml-example")
    page.wait_for_function("() => document.querySelector('#video-yaml').innerText.includes('harbour')")
    page.click("#video-yaml-load")
    wait_video_progress(page, "Loaded 2 scene(s)")
    assert table_prompts(page) == ["a quiet harbour at dawn, mist over the water",
                                   "fishing boats leaving the harbour, golden light"]
    assert "harbour" not in page.locator("#video-yaml").inner_text()  # cleared: the table renders now
    page.locator("#video-more").get_by_text("More settings").click()
    assert page.locator("#video-title textarea").input_value() == "A day at the harbour"
    assert page.locator("#video-fps input").input_value() == "8"
    set_cell(page, 1, 2, "3")
    page.click("#video-save")
    wait_video_progress(page, "Storyboard saved: 2 scene(s), 5 s")
    link = page.locator("#video-saved a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    data = yaml.safe_load(open(info.value.path()).read())
    assert [s["duration"] for s in data["scenes"]] == [2, 3] and data["title"] == "A day at the harbour"


@needs_chromium
def test_stop_ends_a_video_render(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    paste_prompts(page, "\n".join(f"scene {n}" for n in range(1, 11)))  # ten: work left that a slow machine sees
    small_settings(page, steps=150)
    before = {p.name for p in local_app.output_dir.rglob("*.mp4")}
    page.click("#video-render")
    page.wait_for_function("() => /step [3-9]\\/150/.test(document.querySelector('#video-progress').innerText)",
                           timeout=30_000)
    page.click("#video-stop")
    page.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('Stopped')",
                           timeout=10_000)
    page.wait_for_timeout(1000)
    assert "Video ready" not in video_progress(page)
    assert {p.name for p in local_app.output_dir.rglob("*.mp4")} == before
    # the render really ended: a short image does not wait behind the remaining ~1400 steps
    page.get_by_role("tab", name="Image").click()
    fill_image_form(page, "after the stop", steps=2, seed=1)
    page.click("#generate")
    wait_progress(page, "Done", timeout_ms=12_000)


def test_stop_reaches_a_waiting_render_though_render_is_pressed_again(new_page, local_app):
    """Both render slots busy (two other tabs): Render waits; Stop, then Render pressed again at once. The waiting
    render still stops as it starts: it keeps the time of its own click, which the page sends with it (a State
    would be read when it starts, with the second click's later time, and it ran)."""
    pages = [new_page(own_context=True) for _ in range(3)]
    for page in pages:
        open_video_tab(page, local_app.url)
        paste_prompts(page, "scene one\nscene two")
        small_settings(page, steps=150)
    *busy, me = pages
    for page in busy:
        page.click("#video-render")
    for page in busy:  # each holds a slot: its render's own lines replaced "Waiting for a free render slot"
        page.wait_for_function("() => /Scene|step|Started/.test(document.querySelector('#video-progress').innerText)",
                               timeout=120_000)
    me.click("#video-render")
    me.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('Waiting for a free')")
    me.click("#video-stop")
    me.wait_for_timeout(300)
    me.click("#video-render")
    me.wait_for_timeout(300)
    for page in busy:
        page.click("#video-stop")
    me.wait_for_function("() => !document.querySelector('#video-progress').innerText.includes('Waiting for a free')",
                         timeout=60_000)
    assert video_progress(me) == "Stopped. The render was stopped before it started."
