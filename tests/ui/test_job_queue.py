"""The Image tab's job queue at 1440x900: Generate during a run adds a job with its place shown, each job
keeps the form as it was at its click, a Cancel removes one waiting job, Clear queue removes them all, and
every finished job lands in the session's history."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, set_number, texts_seen,
                               wait_progress, wait_step, wait_text, wait_until, watch_text)

pytestmark = needs_chromium

LONG_STEPS, LONG_SIZE = 150, 256  # the most steps, at 256 px: long enough on the tiny model (about 10 s here) to
# queue, look and cancel while it runs, even on a busy machine


def queue_rows(page) -> list[str]:
    """The waiting jobs the queue list shows, in order."""
    return [text.strip() for text in page.locator(".job-queue-row:visible [id^=job-queue-text]").all_inner_texts()]


def history_seeds(page) -> list[str]:
    """The seeds of the session's history, newest first (captions lead with the seed)."""
    return [text.split("·")[0].strip() for text in page.locator("#history .caption-label").all_inner_texts()]


def start_long_job(page, prompt: str = "a long night", seed: int = 100) -> None:
    fill_image_form(page, prompt, width=LONG_SIZE, height=LONG_SIZE, steps=LONG_STEPS, seed=seed)
    page.click("#generate")
    wait_step(page, 2)


def queue_job(page, prompt: str, seed: int, steps: int = 2) -> None:
    """Change the form, then Generate: the job takes the form as it is now."""
    page.locator("#prompt textarea").fill(prompt)
    set_number(page, "seed", seed)
    set_number(page, "steps", steps)
    page.click("#generate")


def test_clicks_during_a_run_queue_jobs_that_each_keep_their_form_and_each_land_in_history(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    start_long_job(page, "a lighthouse", seed=11)  # running while two more queue
    watch_text(page, "job-queue-header")
    queue_job(page, "a harbour crane at dusk", 12)
    wait_text(page, "job-queue-header", "1 waiting")
    # the click's answer (a later redraw of the list may already have replaced it)
    assert wait_until(lambda: any("Added with 1 job ahead of it" in t for t in texts_seen(page, "job-queue-header")),
                      5), texts_seen(page, "job-queue-header")
    queue_job(page, "a ferry in fog", 13)
    wait_text(page, "job-queue-header", "2 waiting")
    rows = queue_rows(page)
    assert len(rows) == 2 and rows[0].startswith("1. a harbour crane at dusk") and rows[1].startswith("2. a ferry in fog")
    assert "2 steps" in rows[0]
    assert page.locator("#job-queue").bounding_box()["y"] < 900  # on the first screen, under the prompt
    # every job finishes into the history, in click order, each with the seed it was queued with
    assert wait_until(lambda: history_count(page) == 3, 60), history_count(page)
    assert history_seeds(page) == ["seed 13", "seed 12", "seed 11"]
    assert page.locator("#job-queue").is_hidden()  # nothing waits any more
    wait_progress(page, "Done")


def test_cancel_removes_one_waiting_job_and_clear_queue_removes_the_rest(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    start_long_job(page, seed=20)
    for waiting, seed in ((1, 21), (2, 22), (3, 23)):
        queue_job(page, f"a waiting job {seed}", seed)
        wait_text(page, "job-queue-header", f"{waiting} waiting")
    page.click("#job-queue-cancel-2")  # the second waiting job
    assert "One job removed" in wait_text(page, "job-queue-header", "2 waiting")
    rows = queue_rows(page)
    assert [row.split(" · ")[0] for row in rows] == ["1. a waiting job 21", "2. a waiting job 23"]
    page.click("#job-queue-clear")
    assert wait_until(lambda: page.locator("#job-queue").is_hidden(), 5)
    before = wait_step(page, 1)
    wait_step(page, int(before.split("Step ")[1].split("/")[0]) + 1)  # the running job goes on
    page.click("#stop")
    wait_progress(page, "Stopped")
    page.wait_for_timeout(1500)  # nothing else starts: the queue is empty
    assert "Stopped" in page.locator("#progress-line").inner_text()
    assert history_count(page) == 0


def test_stop_stops_the_running_job_and_the_next_one_starts(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    start_long_job(page, seed=30)
    queue_job(page, "the one after", 31)
    wait_text(page, "job-queue-header", "1 waiting")
    page.click("#stop")
    assert wait_until(lambda: history_count(page) == 1, 30), history_count(page)
    assert history_seeds(page) == ["seed 31"]
    wait_progress(page, "Done")


def test_a_full_queue_says_so_and_adds_nothing(desktop, app_with_env):
    url = app_with_env(GATOR_MAX_WAITING_PER_SESSION="2").url
    page = desktop
    open_app(page, url)
    start_long_job(page, seed=40)
    for waiting, seed in ((1, 41), (2, 42)):
        queue_job(page, f"job {seed}", seed)
        wait_text(page, "job-queue-header", f"{waiting} waiting")  # each click lands before the next
    queue_job(page, "job 43", 43)
    header = wait_text(page, "job-queue-header", "Not added")
    assert "2 waiting" in header and "already holds 2 jobs" in header, header
    assert [row.split(" · ")[0] for row in queue_rows(page)] == ["1. job 41", "2. job 42"]
    assert page.locator(".job-queue-row").count() == 2  # one row per place the limit allows
    page.click("#job-queue-clear")
    page.click("#stop")
    wait_progress(page, "Stopped")


def test_the_queue_list_fits_a_phone(chromium_browser, local_app):
    context = chromium_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        open_app(page, local_app.url)
        start_long_job(page, seed=50)
        queue_job(page, "a very long prompt for a phone screen " * 4, 51)
        wait_text(page, "job-queue-header", "1 waiting")
        width = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})")
        assert width["scroll"] <= width["inner"], width
        box = page.locator("#job-queue-cancel-1").bounding_box()
        assert box and box["x"] + box["width"] <= 390, box
        page.click("#job-queue-clear")
        page.click("#stop")
        wait_progress(page, "Stopped")
    finally:
        context.close()
