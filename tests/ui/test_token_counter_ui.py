"""A1111's token counter in the browser: each prompt box shows its CLIP tokens over the chunk places in its top right
corner while the user types, marks a prompt that runs into a second chunk, and counts the chosen styles in."""
from __future__ import annotations

from tests.ui.conftest import needs_chromium, open_app
from tests.ui.test_styles_ui import pick_style

LONG = ", ".join(["masterpiece best quality"] * 30)  # 30 x 3 words + 29 commas: 119 tokens


def counter(page, elem_id: str):
    return page.locator(f"#{elem_id} .gator-tokens")


def wait_count(page, elem_id: str, label: str) -> None:
    page.wait_for_function("([id, label]) => document.querySelector(`#${id} .gator-tokens`)?.innerText === label",
                           arg=[elem_id, label], timeout=10_000)


@needs_chromium
def test_the_counters_follow_the_typing_and_mark_a_second_chunk(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    assert counter(page, "prompt-tokens").inner_text() == "0/75"
    assert counter(page, "negative-tokens").inner_text() == "0/75"
    page.locator("#prompt textarea").fill("a (red:1.2) fox in the snow <lora:detail:0.5>")
    wait_count(page, "prompt-tokens", "6/75")  # the weight and the LoRA tag are not tokens
    page.locator("#negative-prompt textarea").fill("blurry, lowres")
    wait_count(page, "negative-tokens", "4/75")
    assert "gator-tokens-over" not in counter(page, "prompt-tokens").get_attribute("class")
    page.locator("#prompt textarea").fill(LONG)
    wait_count(page, "prompt-tokens", "119/150")
    assert "gator-tokens-over" in counter(page, "prompt-tokens").get_attribute("class")
    assert "75-token chunks" in counter(page, "prompt-tokens").get_attribute("title")
    page.locator("#prompt textarea").fill("a red fox BREAK snow")
    wait_count(page, "prompt-tokens", "76/150")  # BREAK closes the first chunk

    # in the top right corner of its box, above the text area, clear of the label
    box = page.locator("#prompt").bounding_box()
    area = page.locator("#prompt textarea").bounding_box()
    label = page.locator("#prompt [data-testid=block-info]").first.bounding_box()
    shown = counter(page, "prompt-tokens").bounding_box()
    assert box["x"] + box["width"] / 2 < shown["x"] and shown["x"] + shown["width"] <= box["x"] + box["width"]
    assert box["y"] <= shown["y"] and shown["y"] + shown["height"] <= area["y"]
    assert label["x"] + label["width"] < shown["x"]


@needs_chromium
def test_the_chosen_styles_are_counted_in(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    style = local_app.manager.available_styles()[1]
    styled, styled_negative = local_app.manager.styled(style, "a fox", "blurry")
    page.locator("#prompt textarea").fill(styled)  # the styled text as the encoder will see it
    page.locator("#negative-prompt textarea").fill(styled_negative)
    page.wait_for_function("() => document.querySelector('#prompt-tokens .gator-tokens').innerText !== '0/75'")
    page.wait_for_timeout(500)
    expected = counter(page, "prompt-tokens").inner_text(), counter(page, "negative-tokens").inner_text()
    page.locator("#prompt textarea").fill("a fox")
    page.locator("#negative-prompt textarea").fill("blurry")
    wait_count(page, "prompt-tokens", "2/75")
    pick_style(page, style)
    wait_count(page, "prompt-tokens", expected[0])
    wait_count(page, "negative-tokens", expected[1])


@needs_chromium
def test_the_hires_prompts_have_counters_and_empty_ones_count_nothing(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    page.locator("#hires-box").get_by_text("Hires fix").click()
    page.locator("#hires-prompt textarea").fill("a red fox in the snow")
    wait_count(page, "hires-prompt-tokens", "6/75")
    style = local_app.manager.available_styles()[1]
    pick_style(page, style)  # an empty hires negative prompt is the negative prompt's: no style tokens of its own
    page.wait_for_timeout(500)
    assert counter(page, "hires-negative-prompt-tokens").inner_text() == "0/75"
    assert counter(page, "hires-prompt-tokens").inner_text() != "6/75"  # the style goes on the hires prompt too
