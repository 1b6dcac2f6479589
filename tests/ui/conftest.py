"""Browser-test fixtures: the real app on a free port (tiny model, optional fake ComfyUI) and Debian's chromium.

A test that uses `ui_page` (or `new_page`) and fails leaves a screenshot of each of its pages in
artifacts/screenshots/<test>.png (test_look.py keeps its own screenshots of every layout).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Each test process has a Gradio cache of its own: an app deletes its copies when it stops, and another process's
# app showing a picture of the same bytes (the same path in a shared cache) would lose its copy then.
GRADIO_CACHE = Path(tempfile.mkdtemp(prefix="gator-test-gradio-"))
os.environ["GRADIO_TEMP_DIR"] = str(GRADIO_CACHE)

from engine.config import Settings  # noqa: E402
from engine.manager import AIModelManager  # noqa: E402
from tests.conftest import CPU  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-features=BackForwardCache"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")


@dataclass
class RunningApp:
    url: str
    manager: AIModelManager
    demo: Any
    output_dir: Path

    def saved_images(self) -> list[Path]:
        return sorted(self.output_dir.rglob("*.png")) if self.output_dir.exists() else []


def run_coroutine(coroutine: Any) -> Any:
    """Run `coroutine` to its end in a thread of its own: while the browser is open, the sync Playwright API
    holds an event loop on the test's thread, so tests here never await on it (no async tests in tests/ui)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def start_app(settings: Settings, *, browse_outputs: bool = True, **demo_options: Any) -> RunningApp:
    from ui.app import build_demo, launch_options

    manager = AIModelManager(settings, hardware=CPU)
    run_coroutine(manager.initialize_models())
    demo = build_demo(manager, browse_outputs=browse_outputs, **demo_options)
    # Gradio's own readiness check (`_frontend`) gives the first page 3 s, once, and then refuses to start; on a
    # loaded CI machine the page can take longer, so the app is waited for here with a longer limit instead
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, ssr_mode=False,
                            quiet=True, _frontend=False, **launch_options(manager, demo))
    wait_until_served(url)
    return RunningApp(url=url, manager=manager, demo=demo, output_dir=Path(settings.output_dir))


def wait_until_served(url: str, limit_s: float = 90.0) -> None:
    """Wait until the app's page answers at `url` (as the app's own launcher does); fail the test with the last
    error after `limit_s`."""
    from ui.launcher import page_problem

    problem = page_problem(url, limit_s)
    if problem:
        pytest.fail(f"the app did not answer on {url} within {limit_s:.0f} s: {problem}")


def stop_app(app: RunningApp) -> None:
    app.demo.close()
    app.manager.shutdown()


@pytest.fixture(scope="session", autouse=True)
def gradio_cache() -> Iterator[Path]:
    """This test process's Gradio cache folder, removed when its tests end."""
    yield GRADIO_CACHE
    shutil.rmtree(GRADIO_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def local_app(tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    """The app on the tiny model only (ComfyUI disabled)."""
    settings = Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("ui-outputs"),
                        tiny_model_dir=tiny_model_dir, models_dir=tmp_path_factory.mktemp("no-models"))
    app = start_app(settings)
    yield app
    stop_app(app)


@pytest.fixture
def app_with_env(tmp_path, tiny_model_dir, monkeypatch) -> Iterator[Callable[..., RunningApp]]:
    """start(**env) -> RunningApp: the app in this process (tiny model, no ComfyUI) built with `env` set, for the
    settings the UI reads from the environment; a quicker start than app.py's. Stopped after the test."""
    apps: list[RunningApp] = []

    def start(**env: str) -> RunningApp:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                                 tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models"))
        apps.append(app)
        return app

    yield start
    for app in apps:
        stop_app(app)


@pytest.fixture(scope="module")
def controlnet_app(tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    """The app on the tiny model with the tiny ControlNet (tests/support/tiny_controlnet.py) in its models folder."""
    from tests.support.tiny_controlnet import write_tiny_controlnet

    models = tmp_path_factory.mktemp("controlnet-models")
    write_tiny_controlnet(models, tiny_model_dir)
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=models))
    yield app
    stop_app(app)


@pytest.fixture(scope="package")
def chromium_browser():
    """One Chromium for the browser suite, closed after its last test: the sync Playwright API holds an event
    loop on this thread while it runs, which later packages' asyncio tests must not meet (see `run_coroutine`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _shot_name(request, suffix: str = "") -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return SCREENSHOTS / f"{name}{suffix}.png"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember whether the test itself failed, for the page fixtures' screenshots."""
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture(scope="package")
def shared_context(chromium_browser):
    """The browser context most pages open in, with the pages that finished tests left open (on about:blank) for the
    next tests: each load of the app is a Gradio session of its own, and a page that loaded it before opens it again
    in about half the time of a new page (the renderer and the compiled scripts are kept)."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(20_000)
    context.idle_pages = []
    yield context
    context.close()


@pytest.fixture
def new_page(chromium_browser, shared_context, request) -> Iterator[Callable[..., Any]]:
    """A factory of pages: make() gives one in the shared context (its own Gradio session once it opens the app;
    cookies are cleared after the test), make(own_context=True) one in a context of its own (its own login)."""
    contexts, pages, shared = [], [], []

    def make(own_context: bool = False, width: int = 1280, height: int = 1000):
        if own_context:
            context = chromium_browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(20_000)
            contexts.append(context)
            page = context.new_page()
        else:
            if shared_context.idle_pages:
                page = shared_context.idle_pages.pop()
                page.bring_to_front()  # a page left in the background would have its animation frames held back
            else:
                page = shared_context.new_page()
            page.set_viewport_size({"width": width, "height": height})
            shared.append(page)
        pages.append(page)
        return page

    yield make
    failed = getattr(request.node, "call_failed", True)
    for i, page in enumerate(pages if failed else ()):
        try:
            page.screenshot(path=str(_shot_name(request, "" if len(pages) == 1 else f"-page{i + 1}")), full_page=True)
        except Exception:  # a screenshot must never hide the test's own result
            pass
    for page in shared:
        if page.is_closed():
            continue
        if failed:
            page.close()
            continue
        try:
            page.goto("about:blank")  # leaves the app: its session ends as when a tab closes
            shared_context.idle_pages.append(page)
        except Exception:
            page.close()
    shared_context.clear_cookies()
    for context in contexts:
        context.close()


@pytest.fixture
def desktop(new_page):
    """A page at 1440x900, the first screen the layout tests judge."""
    return new_page(width=1440, height=900)


@pytest.fixture
def ui_page(new_page):
    return new_page()


# -- app.py as a user runs it, in a process of its own ------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcesses:
    """app.py processes started with a test's flags and environment, writing under `folder`; `stop` ends them."""

    def __init__(self, folder: Path, tiny_model_dir: Path) -> None:
        self.folder, self.tiny_model_dir, self.procs = folder, tiny_model_dir, []

    def start(self, *flags: str, **env: str) -> tuple[str, Path]:
        """Start app.py and wait until it answers: its URL and its log file."""
        port = free_port()
        log = self.folder / f"app-{port}.log"
        inherited = {k: v for k, v in os.environ.items() if k != "GATOR_AUTH"}
        environment = {**inherited, "GATOR_ENABLE_COMFYUI": "0", "GATOR_TINY_MODEL_DIR": str(self.tiny_model_dir),
                       "GATOR_OUTPUT_DIR": str(self.folder / "outputs"),
                       "GATOR_MODELS_DIR": str(self.folder / "models"),
                       "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                       # a share server that cannot answer: no public link is ever made from a test
                       "GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:9",
                       "GRADIO_TEMP_DIR": str(self.folder / f"gradio-{port}"),  # its own: it sweeps its copies
                       **env}
        handle = log.open("w")
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *flags], cwd=ROOT, env=environment,
                                stdout=handle, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "gradio_api/info", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"app.py did not answer on {url}:\n{log.read_text()}")
        return url, log

    def stop(self) -> None:
        """End them at once (SIGKILL): a graceful stop (SIGTERM, tested in test_app_entry.py) waits out the
        interpreter's teardown of torch and Gradio, seconds per app."""
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def run_app(tmp_path, tiny_model_dir):
    """start(*flags, **env) -> (url, log): app.py with this test's flags, stopped after the test."""
    processes = AppProcesses(tmp_path, tiny_model_dir)
    yield processes.start
    processes.stop()


@pytest.fixture(scope="package")
def app_process(tmp_path_factory, tiny_model_dir) -> Iterator[tuple[str, Path]]:
    """(url, log) of one app.py with default flags, shared by the tests that need no settings of their own."""
    processes = AppProcesses(tmp_path_factory.mktemp("app-process"), tiny_model_dir)
    yield processes.start()
    processes.stop()


# logins of `login_app`: root is its admin; eve is the one whose password is guessed (and locked out)
LOGINS = "ann:a1,bob:b2,root:r3,../x:x4,cy:c5,eve:eve-pass-7"


@dataclass
class LoginApp:
    url: str
    output_dir: Path
    log: Path


@pytest.fixture(scope="package")
def login_app(tmp_path_factory, tiny_model_dir) -> Iterator[LoginApp]:
    """app.py with logins from GATOR_AUTH (LOGINS), root as the admin, and a quick lock-out (3 failures lock a login
    for 2 s; each failure answers 0.3 s late), shared by the tests of logins."""
    folder = tmp_path_factory.mktemp("login-app")
    processes = AppProcesses(folder, tiny_model_dir)
    url, log = processes.start("--admin", "root", GATOR_AUTH=LOGINS, GATOR_LOGIN_MAX_FAILURES="3",
                               GATOR_LOGIN_MAX_ADDRESS_FAILURES="5",
                               GATOR_LOGIN_LOCKOUT_S="2", GATOR_LOGIN_DELAY_S="0.3")
    yield LoginApp(url, folder / "outputs", log)
    processes.stop()


# -- helpers the tests share -----------------------------------------------------------------------

def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#backend-badge")
    page.wait_for_selector("#generate")


def set_number(page, elem_id: str, value: Any) -> None:
    """Type into a gr.Number or the number box of a gr.Slider, then leave the field so Gradio takes it."""
    locator = page.locator(f"#{elem_id} input[type=number]").first
    locator.fill(str(value))
    locator.press("Tab")


def set_slider(page, elem_id: str, value: float, settle_ms: int = 300) -> None:
    """Type into a slider's number box until the slider itself has taken the value and still has it a moment later
    (a box that was still being laid out, or that is redrawn as its accordion opens, can lose what was typed)."""
    taken = "([id, v]) => Number(document.querySelector(`#${id} input[type=range]`)?.value) === v"
    for _ in range(3):
        set_number(page, elem_id, value)
        try:
            page.wait_for_function(taken, arg=[elem_id, value], timeout=2_000)
        except Exception:  # typed too early: again
            continue
        page.wait_for_timeout(settle_ms)
        if page.evaluate(taken, [elem_id, value]):
            return
    raise AssertionError(f"the slider {elem_id} did not take {value}")


def set_number_settled(page, elem_id: str, value: Any, settle_ms: int = 300) -> None:
    """`set_number` right after the layout changed (a box just opened, a picture just sent into it): type again
    while the box shows another value a moment later (it was redrawn and lost what was typed)."""
    for _ in range(3):
        set_number(page, elem_id, value)
        page.wait_for_timeout(settle_ms)
        if page.locator(f"#{elem_id} input[type=number]").first.input_value() == str(value):
            return
    raise AssertionError(f"#{elem_id} did not keep {value}")


def generate_and_read(page, app: RunningApp, says: str, stem: str) -> str:
    """Press Generate, wait for Done and for the details to say `says`; the A1111 text of the one saved PNG whose
    file name holds `stem` ("-31-a-paper-crane": seed and prompt)."""
    from PIL import Image

    page.click("#generate")
    wait_progress(page, "Done")
    wait_text(page, "result-details", says)
    (made,) = [path for path in app.saved_images() if stem in path.name]
    return Image.open(made).text["parameters"]


def fill_image_form(page, prompt: str, *, width: int = 64, height: int = 64, steps: int = 3, seed: int = -1,
                    backend: str | None = None) -> None:
    page.locator("#prompt textarea").fill(prompt)
    set_number(page, "width", width)
    set_number(page, "height", height)
    set_number(page, "steps", steps)
    set_number(page, "seed", seed)
    if backend:
        page.locator(f"#backend input[value={backend}]").check()


def run_into_second_image(page, url: str, prompt: str, *, count: int, seed: int) -> None:
    """Open the app and start a batch of `count` long images (80 steps at 256 px, about 5 s each here, so the
    second is still running after a busy machine's next click); return once image 1 is done and image 2 runs."""
    open_app(page, url)
    fill_image_form(page, prompt, width=256, height=256, steps=80, seed=seed)
    set_number(page, "batch", count)
    page.click("#generate")
    wait_progress(page, f"Image 2/{count}", timeout_ms=60_000)


def generate_one(page, url: str, prompt: str, *, steps: int = 3, seed: int = -1) -> None:
    """Open the app, make one 64 px image and wait until it is done."""
    open_app(page, url)
    fill_image_form(page, prompt, steps=steps, seed=seed)
    page.click("#generate")
    wait_progress(page, "Done")


def send_first_result(page, button: str, says: str) -> None:
    """Pick the newest history thumbnail and press `#button` ("send-to-inpaint"...); wait for its sentence."""
    assert wait_until(lambda: history_count(page) >= 1, 10)
    page.locator("#history .thumbnail-item").first.click()
    page.click(f"#{button}")
    wait_text(page, "picked-info", says)


def choose(page, elem_id: str, option: str) -> None:
    """Pick `option` in the dropdown `#elem_id`."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()


def watch_text(page, elem_id: str) -> None:
    """Record every text the element `#elem_id` shows from now on, however briefly (an update can replace it within
    one frame; Gradio may also re-create the element); `texts_seen` returns them."""
    page.evaluate("""(id) => { window.seenTexts = window.seenTexts || {}; const seen = window.seenTexts[id] = [];
        new MutationObserver(() => {
            const element = document.getElementById(id), text = element ? element.innerText : null;
            if (text !== null && seen[seen.length - 1] !== text) seen.push(text); })
            .observe(document.body, {childList: true, subtree: true, characterData: true}); }""", elem_id)


def texts_seen(page, elem_id: str) -> list[str]:
    return page.evaluate("(id) => window.seenTexts[id]", elem_id)


def watch_progress(page) -> None:
    """Record every text the progress line shows from now on (see `watch_text`); `progress_seen` returns them."""
    watch_text(page, "progress-line")


def progress_seen(page) -> list[str]:
    return texts_seen(page, "progress-line")


def progress_text(page) -> str:
    return page.locator("#progress-line").inner_text()


def wait_text(page, elem_id: str, needle: str, timeout_ms: int = 30_000) -> str:
    """Wait until the element `#elem_id` shows `needle` (it may not be on the page yet); return its text."""
    page.wait_for_function("([id, n]) => (document.getElementById(id)?.innerText ?? '').includes(n)", arg=[elem_id, needle],
                           timeout=timeout_ms)
    return page.locator(f"#{elem_id}").inner_text()


def wait_progress(page, needle: str, timeout_ms: int = 30_000) -> str:
    return wait_text(page, "progress-line", needle, timeout_ms)


def wait_step(page, at_least: int, timeout_ms: int = 60_000) -> str:
    """Wait until the progress line shows step `at_least` or later (fast steps may skip any one value)."""
    page.wait_for_function(
        "(n) => { const m = document.querySelector('#progress-line').innerText.match(/Step (\\d+)\\//);"
        " return m !== null && Number(m[1]) >= n; }", arg=at_least, timeout=timeout_ms)
    return progress_text(page)


def history_count(page) -> int:
    return page.locator("#history .thumbnail-item").count()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
