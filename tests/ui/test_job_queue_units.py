"""The per-session job queue on its own: order, places, one runner per session, nothing stranded."""
from __future__ import annotations

import threading
import time

import pytest

from ui.image_tab import FORM_INPUTS, job_args
from ui.job_queue import JobQueue, QueuedJob, QueueFull
from ui.queue_panel import _plain


def test_jobs_wait_in_order_and_report_how_many_are_ahead():
    queue = JobQueue(limit=4)
    assert queue.add("s", {"prompt": "a"}) == 0  # nothing runs yet: it starts at once
    assert queue.claim("s")
    assert queue.next("s").args["prompt"] == "a"
    assert queue.add("s", {"prompt": "b"}, when_first={"first": True}) == 1  # the running job is ahead of it
    assert queue.add("s", {"prompt": "c"}) == 2
    assert queue.add("other", {"prompt": "y"}, when_first={"first": True}) == 0
    assert queue.waiting("other")[0].args["first"] and "first" not in queue.waiting("s")[0].args
    queue.clear("other")
    assert queue.add("other", {"prompt": "x"}) == 0  # sessions do not share a queue
    assert [job.args["prompt"] for job in queue.waiting("s")] == ["b", "c"]
    assert not queue.claim("s")  # a second runner for the session returns at once
    assert [queue.next("s").args["prompt"], queue.next("s").args["prompt"]] == ["b", "c"]
    assert queue.next("s") is None  # and the runner gave up its place
    assert queue.claim("s")


def test_a_job_added_as_the_runner_finishes_is_taken_by_one_runner_or_the_next():
    queue = JobQueue(limit=4)
    assert queue.claim("s") and queue.next("s") is None  # the runner found nothing and left
    queue.add("s", {"prompt": "late"})
    assert queue.claim("s")  # so the runner the click starts takes it
    assert queue.next("s").args["prompt"] == "late"


def test_cancel_takes_one_waiting_job_by_id_and_clear_takes_the_rest():
    queue = JobQueue(limit=4)
    queue.claim("s")
    for prompt in "abc":
        queue.add("s", {"prompt": prompt})
    b = queue.waiting("s")[1]
    assert queue.cancel("s", b.id)
    assert not queue.cancel("s", b.id)  # already gone
    started = queue.next("s")
    assert not queue.cancel("s", started.id)  # a started job is Stop's business
    assert queue.clear("s") == 1 and queue.waiting("s") == []
    assert queue.clear("s") == 0


def test_the_limit_is_a_sentence_and_at_least_one():
    queue = JobQueue(limit=2)
    queue.add("s", {})
    queue.add("s", {})
    with pytest.raises(QueueFull, match="already holds 2 jobs"):
        queue.add("s", {})
    with pytest.raises(ValueError):
        JobQueue(limit=0)


def test_every_job_is_taken_exactly_once_while_clicks_race_the_runner():
    queue, taken, added = JobQueue(limit=10_000), [], []

    def click(n: int) -> None:
        for i in range(200):
            queue.add("s", {"n": (n, i)})
            added.append((n, i))
            if queue.claim("s"):  # what each click's runner does
                while (job := queue.next("s")) is not None:
                    taken.append(job.args["n"])

    threads = [threading.Thread(target=click, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(added) and len(taken) == len(set(taken)) == 800


def test_the_list_shows_a_prompt_as_typed_and_short():
    job = QueuedJob(1, {"prompt": "a *bold* [link](x) " + "word " * 30, "width": 64, "height": 48, "steps": 3})
    summary = job.summary()
    assert summary.startswith("a *bold* [link](x) word") and summary.endswith("· 64x48 · 3 steps")
    assert "…" in summary
    assert _plain("*a* _b_ 1. [c]") == "\\*a\\* \\_b\\_ 1\\. \\[c\\]"


def test_a_plot_job_keeps_the_form_as_generate_does_and_says_it_is_a_plot():
    form = dict(zip(FORM_INPUTS, range(len(FORM_INPUTS))))
    args = job_args(form)
    assert (args["prompt"], args["batch"], args["hires"]["hires_steps"], args["inpaint"]["mask_blur"]) == \
           (form["prompt"], form["batch"], form["hires_steps"], form["mask_blur"])
    plot = QueuedJob(2, {**args, "prompt": "a fox", "width": 64, "height": 64, "steps": 2, "plot": {"x_type": "steps"}})
    assert plot.summary() == "X/Y/Z plot · a fox · 64x64 · 2 steps"


def test_a_finished_image_shown_after_stop_leaves_the_stopped_line_alone():
    """On a busy machine an image's Done update can arrive after the run's "Stopped": it then brings the details,
    gallery and download, but not its Done line (pressing Stop is what the user last asked for)."""
    import time
    from types import SimpleNamespace

    import gradio as gr

    from tests.ui.conftest import run_coroutine
    from ui.image_tab import ImageTabHandlers
    from ui.sessions import Jobs

    handlers = ImageTabHandlers(manager=None, jobs=Jobs())
    request = SimpleNamespace(session_hash="tab-1", username=None, client=None)
    first = {"line": "Image 1/3 · Done in 0.4 s", "details": "Seed 9", "path": "/x/1.png", "at": time.monotonic()}
    assert handlers.show_finished(first, [], request)[0] == "Image 1/3 · Done in 0.4 s"
    run_coroutine(handlers.stop([], request))  # (a browser test may hold this thread's event loop)
    line, details, _gallery, _download = handlers.show_finished(first, [], request)  # arriving late
    assert isinstance(line, type(gr.skip())) and details == "Seed 9"
    later = {**first, "line": "Done in 0.4 s", "at": time.monotonic()}  # an image finished after that Stop
    assert handlers.show_finished(later, [], request)[0] == "Done in 0.4 s"
    other = SimpleNamespace(session_hash="tab-2", username=None, client=None)
    assert handlers.show_finished(first, [], other)[0] == "Image 1/3 · Done in 0.4 s"  # another tab's Stop is its own
    followed = {**first, "line": None}  # image 1 of 3: its line came with the stream, before image 2's first line
    line, details, _gallery, _download = handlers.show_finished(followed, [], other)
    assert isinstance(line, type(gr.skip())) and details == "Seed 9"


def test_with_logins_only_an_admin_saves_a_style(settings):
    from types import SimpleNamespace

    from engine.manager import AIModelManager
    from ui.image_tab import STYLES_ADMINS_ONLY, ImageTabHandlers
    from ui.sessions import Jobs

    manager = AIModelManager(settings, admins=["root"])
    handlers = ImageTabHandlers(manager=manager, jobs=Jobs())

    def as_user(name):
        return SimpleNamespace(session_hash=f"tab-{name}", username=name, client=None)

    note, _ = handlers.save_style("Shared", "{prompt}, gold", "", [], as_user("bob"))
    assert note == STYLES_ADMINS_ONLY and "Shared" not in manager.available_styles()
    note, choices = handlers.save_style("Shared", "{prompt}, gold", "", ["Shared"], as_user("root"))
    assert note == "Saved the style 'Shared': it is in the Styles box now." and "Shared" in manager.available_styles()
    assert "Shared" in choices["choices"]  # the Styles box offers it at once
    note, box = handlers.delete_style("Shared", ["Shared"], as_user("root"))  # deleted while selected
    assert "Shared" not in box["choices"] and box["value"] == []  # a value left behind failed every Generate


def test_with_logins_only_an_admin_merges_checkpoints(settings):
    from types import SimpleNamespace

    from engine.manager import AIModelManager
    from tests.ui.conftest import run_coroutine
    from ui.merger_panel import MERGE_ADMINS_ONLY, MergerHandlers

    manager = AIModelManager(settings, admins=["root"])
    handlers = MergerHandlers(manager)
    bob = SimpleNamespace(session_hash="tab-bob", username="bob", client=None)
    note, *_ = run_coroutine(handlers.merge("a", "b", None, "mix", 0.5, "weighted_sum", False, bob))
    assert note == MERGE_ADMINS_ONLY
    root = SimpleNamespace(session_hash="tab-root", username="root", client=None)
    note, *_ = run_coroutine(handlers.merge("a", "b", None, "mix", 0.5, "weighted_sum", False, root))
    assert note.startswith("'a' is not a checkpoint file on this machine")  # an admin's request reaches the merger


FORM = ["a fox", "", [], "auto", "auto", 64, 64, 1, 5.0, 7, "euler", 1, 1, -1, 0, False, 0.0, False, "auto", None,
        0.75, "just resize", True, 1.0, 0.5, 0, "Lanczos", "same", "", "", "Use same checkpoint", 0, 0,  # the hires fix
        None, 0.75, 4, "original", "whole picture", 32, 0, 0, 0, 0,  # inpaint
        None, "none", "canny", 1.0, 0.0, 1.0, 100, 200, "none"]  # ControlNet, the user workflow


def test_generate_forevers_click_that_stop_overtook_adds_nothing(settings):
    """Generate forever: when a job ends the runner asks the page for another Generate; a Stop pressed while that
    click was on its way let one more image through. That click now adds nothing; the next Generate is taken. And
    a job that Stop finds said "Starting…" but not yet taken up by the runner stops at once."""
    from types import SimpleNamespace

    from engine.manager import AIModelManager
    from tests.ui.conftest import run_coroutine
    from ui.image_tab import ImageTabHandlers
    from ui.sessions import Jobs

    handlers = ImageTabHandlers(manager=AIModelManager(settings), jobs=Jobs())
    handlers.components = type("Names", (dict,), {"__missing__": lambda self, key: key})()  # each by its name
    handlers.panel = SimpleNamespace(refresh=lambda waiting, note="": (len(waiting), note))
    request = SimpleNamespace(session_hash="tab-1", username=None, client=None)

    async def run_one_job() -> list:
        return [update async for update in handlers.run_queue([], 0, 0, request=request)]

    handlers.set_forever(True, request)
    assert handlers.add_job(*FORM, request=request)[0] == "Starting…"
    updates = run_coroutine(run_one_job())
    assert any(update.get("finished") for update in updates)  # the image was made
    assert updates[-1] == {"forever_tick": 1}  # the runner asked the page for another Generate
    assert handlers.add_job(*FORM, request=request)[0] == "Starting…"  # that click, before any Stop: taken
    updates = run_coroutine(run_one_job())
    assert updates[-1] == {"forever_tick": 1}
    run_coroutine(handlers.stop([], request))  # Stop pressed while the page's click was on its way
    assert handlers.add_job(*FORM, request=request)[1] == 0  # nothing added: the progress line keeps "Stopped"
    assert handlers.add_job(*FORM, request=request)[0] == "Starting…"  # the user's own Generate after that
    run_coroutine(handlers.stop([], request))  # Stop again, before the runner took that job up
    updates = run_coroutine(run_one_job())
    assert not any(update.get("finished") for update in updates)  # it stopped at once: no image after Stop
    assert any("Stopped" in str(update.get("progress", "")) for update in updates)
