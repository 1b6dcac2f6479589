"""The bad-input table through the running app: its API (gradio_client) and the Image tab in the browser."""
from __future__ import annotations

import pytest
from gradio_client import Client

from tests.support.bad_inputs import BAD_INPUTS, api_kwargs
from tests.ui.conftest import fill_image_form, history_count, needs_chromium, open_app, set_number, wait_progress


@pytest.fixture(scope="module")
def client(local_app):
    return Client(local_app.url, verbose=False)


@pytest.mark.parametrize("label,change,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_api_shows_the_message(client, local_app, label, change, message):
    before = local_app.saved_images()
    with pytest.raises(Exception) as err:
        client.predict(**api_kwargs(change), api_name="/generate_image")
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)
    assert local_app.saved_images() == before


# What a user can type into the Image tab's own fields (the other rows cannot be entered there).
BROWSER_ROWS = [row for row in BAD_INPUTS if row[0] in (
    "width not a multiple of 8", "height not a multiple of 8", "width below 64", "height above 2048",
    "empty prompt", "blank prompt", "seed out of range")]


@needs_chromium
@pytest.mark.parametrize("label,change,message", BROWSER_ROWS, ids=[c[0] for c in BROWSER_ROWS])
def test_image_tab_shows_the_message(ui_page, local_app, label, change, message):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, change.get("prompt", "a cat"), width=change.get("width", 64),
                    height=change.get("height", 64), steps=2)
    if "seed" in change:
        set_number(page, "seed", change["seed"])
    page.click("#generate")
    text = wait_progress(page, message)
    assert "Traceback" not in page.locator("body").inner_text()
    assert history_count(page) == 0, text
