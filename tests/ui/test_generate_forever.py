"""A1111's Generate forever in the browser: with the box on, a finished job is followed by another Generate with the
form as it is then (a prompt changed meanwhile is used), one at a time, until Stop, which turns the box off."""
from __future__ import annotations

import time

from engine.outputs import read_parameters
from tests.ui.conftest import fill_image_form, history_count, needs_chromium, open_app, wait_until

pytestmark = needs_chromium


def prompts_saved(app) -> list[str]:
    paths = sorted(app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    return [read_parameters(p).get("prompt") for p in paths]


def settled_count(page, quiet_s: float = 2.0, timeout_s: float = 20.0) -> int:
    """The history's count once it has not changed for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    count, since = history_count(page), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now = history_count(page)
        if now != count:
            count, since = now, time.monotonic()
    return count


def test_generate_forever_repeats_with_the_form_as_it_is_until_stop(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    before = len(prompts_saved(local_app))
    fill_image_form(page, "a red kite over the dunes", steps=1, seed=-1)
    box = page.locator("#generate-forever input[type=checkbox]")
    box.check()
    page.click("#generate")
    assert wait_until(lambda: history_count(page) >= 3, 60), history_count(page)  # no second click needed
    page.locator("#prompt textarea").fill("a blue boat on a lake")
    assert wait_until(lambda: "a blue boat on a lake" in prompts_saved(local_app)[before:], 60)
    assert page.locator("#job-queue-row-2").is_hidden()  # one at a time: never a pile of waiting jobs
    page.click("#stop")
    assert wait_until(lambda: not box.is_checked(), 30)  # a loaded machine: Stop's round trip can take seconds
    settled = settled_count(page)  # the job running at Stop may still finish (a busy machine: seconds later)
    time.sleep(2.0)
    assert history_count(page) == settled  # nothing more after Stop (ui/image_tab.py `_overtaken_by_stop`)
    saved = prompts_saved(local_app)[before:]
    assert saved[0] == "a red kite over the dunes" and len(set(saved)) == 2
