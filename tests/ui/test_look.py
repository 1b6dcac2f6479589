"""How the app looks: the badge is readable in dark mode, a phone never pans sideways, and nothing needs an emoji font.

Each test opens its own browser context (colour scheme, viewport) and leaves screenshots in artifacts/screenshots/:
image-light.png, image-dark.png and image-phone.png are the Image tab as the README shows it.
"""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from tests.ui.conftest import SCREENSHOTS, fill_image_form, needs_chromium, open_app, wait_progress, wait_text
from tests.ui.test_video_tab import paste_prompts, small_settings
from ui.badge import badge_html

pytestmark = needs_chromium

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TABS = ("Image", "Video storyboard", "System status")

# one badge of each tone, as ui/badge.py writes them
TONES = {
    "live": {"backend": "comfyui", "label": "ComfyUI · FLUX.1-dev"},
    "fallback": {"backend": "diffusers", "label": "diffusers · SDXL 1.0 (fallback: ComfyUI unreachable)",
                 "reason": "ComfyUI unreachable"},
    "demo": {"backend": "diffusers", "label": "tiny demo model (no real weights found)", "demo": True},
    "starting": None,
}
# the light-mode colours of each tone (background, text of the badge), unchanged by the dark-mode work
LIGHT_TONES = {
    "live": ("rgb(231, 247, 236)", "rgb(23, 107, 52)"),
    "fallback": ("rgb(255, 246, 224)", "rgb(138, 90, 0)"),
    "demo": ("rgb(253, 236, 236)", "rgb(155, 28, 28)"),
    "starting": ("rgb(238, 240, 243)", "rgb(74, 85, 104)"),
}

# WCAG contrast of every element of a badge that holds text (and of the badge itself), each against the
# background it is painted on (the first opaque background up the tree, translucent ones blended over it)
CONTRAST_JS = """(selector) => {
  const parse = (c) => { const p = c.match(/[\\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const blend = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = blend(layers[i], bg);
    return bg;
  };
  const badge = document.querySelector(selector);
  const holdsText = (e) => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  return [badge, ...[...badge.querySelectorAll('*')].filter(holdsText)].map(e => {
    const bg = background(e);
    const fg = blend(parse(getComputedStyle(e).color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    return {element: e.className, text: e.innerText, color: getComputedStyle(e).color,
            background: getComputedStyle(e).backgroundColor, ratio: (hi + 0.05) / (lo + 0.05)};
  });
}"""

# characters that need an emoji font (pictographs, the emoji variation selector, keycaps)
EMOJI_JS = "(texts) => texts.filter(t => /[\\p{Extended_Pictographic}\\u{FE0F}\\u{20E3}]/u.test(t))"

# every piece of text a user can meet: text nodes (hidden tabs and closed accordions too) and the attributes
# that browsers show (tooltips, accessible names, placeholders)
PAGE_TEXTS_JS = """() => {
  const texts = [document.body.innerText, document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(n.parentElement?.tagName) && n.textContent.trim())
      texts.push(n.textContent.trim());
  }
  for (const e of document.querySelectorAll('[title], [aria-label], [placeholder], [alt], input, textarea')) {
    for (const a of ['title', 'aria-label', 'placeholder', 'alt']) if (e.getAttribute(a)) texts.push(e.getAttribute(a));
    if (e.value) texts.push(String(e.value));
  }
  return texts;
}"""


@pytest.fixture
def context_of(chromium_browser) -> Iterator[Any]:
    """Browser contexts with a colour scheme and viewport of the test's choosing, closed afterwards."""
    contexts = []

    def make(*, color_scheme: str = "light", viewport: dict[str, int] = DESKTOP):
        context = chromium_browser.new_context(color_scheme=color_scheme, viewport=viewport)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def show_tab(page, name: str) -> None:
    """Select a top-level tab; on a narrow screen Gradio may have moved it into its "More tabs" menu."""
    tab = page.locator("#gator-tabs > .tab-wrapper [role=tab]", has_text=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
    else:
        page.locator("#gator-tabs > .tab-wrapper button[aria-label='More tabs']").click()
        page.locator("#gator-tabs > .tab-wrapper .overflow-dropdown button", has_text=name).click()
    page.wait_for_function("(n) => [...document.querySelectorAll('#gator-tabs > .tab-wrapper [role=tab]')]"
                           ".some(t => t.getAttribute('aria-selected') === 'true' && t.innerText.trim() === n)",
                           arg=name)
    page.wait_for_timeout(300)  # the tab's contents lay out


def add_tone_badges(page) -> None:
    """One extra badge of each tone next to the live one (same container, so the same CSS applies)."""
    html = "".join(badge_html(active).replace('id="backend-badge"', f'id="look-badge-{tone}"')
                   for tone, active in TONES.items())
    page.evaluate("(html) => document.querySelector('#backend-badge').parentElement"
                  ".insertAdjacentHTML('beforeend', html)", html)
    for tone in TONES:
        assert page.locator(f"#look-badge-{tone}").get_attribute("data-tone") == tone


def low_contrast(page, selector: str) -> list[dict[str, Any]]:
    return [part for part in page.evaluate(CONTRAST_JS, selector) if part["ratio"] < 4.5]


def test_badge_is_readable_in_dark_mode(context_of, local_app):
    page = context_of(color_scheme="dark")
    open_app(page, local_app.url)
    # Gradio follows the OS setting with the class "dark" on <body>
    assert page.evaluate("() => document.body.classList.contains('dark')")
    assert page.evaluate(CONTRAST_JS, "#backend-badge"), "the badge has no text"
    assert low_contrast(page, "#backend-badge") == []
    screenshot(page, "image-dark.png")
    add_tone_badges(page)
    for tone in TONES:
        assert low_contrast(page, f"#look-badge-{tone}") == [], tone
    # dark backgrounds, not the light mode's pale ones
    for tone, (light_background, _) in LIGHT_TONES.items():
        assert page.locator(f"#look-badge-{tone}").evaluate("e => getComputedStyle(e).backgroundColor") \
            != light_background, tone


def test_badge_keeps_its_light_colours(context_of, local_app):
    page = context_of(color_scheme="light")
    open_app(page, local_app.url)
    assert not page.evaluate("() => document.body.classList.contains('dark')")
    assert low_contrast(page, "#backend-badge") == []
    screenshot(page, "image-light.png")
    add_tone_badges(page)
    for tone, (background, color) in LIGHT_TONES.items():
        badge = page.locator(f"#look-badge-{tone}")
        assert badge.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]") \
            == [background, color], tone
        assert low_contrast(page, f"#look-badge-{tone}") == [], tone


BADGE_BOX_JS = """(selector) => {
  const b = document.querySelector(selector), s = getComputedStyle(b);
  const label = b.querySelector('.gator-badge-label'), line = parseFloat(getComputedStyle(label).lineHeight);
  const r = b.getBoundingClientRect();
  const frame = ['paddingTop', 'paddingBottom', 'borderTopWidth', 'borderBottomWidth']
    .reduce((sum, k) => sum + parseFloat(s[k]), 0);
  return {height: r.height, twoLines: 2 * line + frame + 1, left: r.left, right: r.right,
          scrollWidth: b.scrollWidth, clientWidth: b.clientWidth, scrollHeight: b.scrollHeight,
          clientHeight: b.clientHeight, labelLines: label.getClientRects().length, text: b.innerText};
}"""

PAGE_WIDTH_JS = "() => ({scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth})"

SCENE_TABLE_JS = """() => {
  const box = document.querySelector('#video-scenes .virtual-table-viewport').getBoundingClientRect();
  const inside = (r) => r.width > 0 && r.left >= box.left - 1 && r.right <= box.right + 1
                        && r.left >= 0 && r.right <= window.innerWidth;
  const headers = [...document.querySelectorAll('#video-scenes th[data-heading]')].map(th => {
    const text = th.querySelector('.header-content span') || th;
    const r = th.getBoundingClientRect(), t = text.getBoundingClientRect();
    return {name: th.innerText.trim(), visible: inside(r) && inside(t) && t.left >= r.left - 1 && t.right <= r.right + 1,
            clipped: text.scrollWidth > text.clientWidth + 1, left: r.left, right: r.right};
  });
  const cells = [0, 1, 2, 3, 4].map(c => {
    const cell = document.querySelector(`#video-scenes [data-testid="cell-0-${c}"]`);
    return cell ? inside(cell.getBoundingClientRect()) : false;
  });
  return {headers, cells, box: [box.left, box.right]};
}"""


def test_phone_layout_fits_the_screen(context_of, local_app):
    page = context_of(viewport=PHONE)
    open_app(page, local_app.url)
    add_tone_badges(page)
    for selector in ("#backend-badge", *(f"#look-badge-{tone}" for tone in TONES)):
        box = page.evaluate(BADGE_BOX_JS, selector)
        # a one- or two-line pill, nothing cut off, inside the screen
        assert box["height"] <= box["twoLines"], (selector, box)
        assert box["scrollWidth"] <= box["clientWidth"] and box["scrollHeight"] <= box["clientHeight"], (selector, box)
        assert box["left"] >= 0 and box["right"] <= PHONE["width"], (selector, box)
    page.evaluate("() => document.querySelectorAll('[id^=look-badge-]').forEach(e => e.remove())")
    screenshot(page, "image-phone.png")

    for name in TABS:
        show_tab(page, name)
        width = page.evaluate(PAGE_WIDTH_JS)
        assert width["scrollWidth"] <= width["innerWidth"] == PHONE["width"], (name, width)

    # the status tables stay inside the screen (they scroll in their own box when they need more room)
    show_tab(page, "System status")
    page.wait_for_selector("#status-local")
    tables = page.evaluate("() => [...document.querySelectorAll('#system-status table')]"
                           ".map(t => [t.id, t.getBoundingClientRect().right])")
    assert tables and all(right <= PHONE["width"] for _, right in tables), tables
    screenshot(page, "status-phone.png")

    # the scene table shows all five columns at once, headers and cells
    show_tab(page, "Video storyboard")
    paste_prompts(page, "a quiet harbour at dawn, mist over the water\nboats leaving the harbour")
    table = page.evaluate(SCENE_TABLE_JS)
    assert [h["name"] for h in table["headers"]] == ["prompt", "negative prompt", "seconds", "transition", "seed"]
    assert all(h["visible"] and not h["clipped"] for h in table["headers"]), table
    assert all(table["cells"]), table
    width = page.evaluate(PAGE_WIDTH_JS)
    assert width["scrollWidth"] <= width["innerWidth"], width
    screenshot(page, "video-phone.png")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def test_no_emoji_anywhere(context_of, local_app):
    page = context_of()
    open_app(page, local_app.url)
    seen: list[str] = []
    # every component's label, button text, choices, info and placeholder, on every tab
    config = httpx.get(local_app.url + "config", timeout=10).json()
    seen += [text for component in config["components"] for text in _strings(component.get("props") or {})]
    # the Image tab: a refused request, a finished image and the seed buttons
    fill_image_form(page, "", steps=2)
    page.click("#generate")
    seen.append(wait_progress(page, "prompt is empty"))
    seen += page.evaluate(PAGE_TEXTS_JS)
    fill_image_form(page, "a lighthouse at dusk", steps=2, seed=5)
    page.click("#generate")
    seen.append(wait_progress(page, "Done"))
    wait_text(page, "result-details", "Saved to")
    page.click("#seed-reuse")
    wait_progress(page, "Seed 5")
    seen += page.evaluate(PAGE_TEXTS_JS)
    # the Video tab: a title-card render
    show_tab(page, "Video storyboard")
    paste_prompts(page, "Chapter one")
    small_settings(page)
    page.locator("#video-use-ai input").uncheck()
    page.click("#video-render")
    seen.append(wait_text(page, "video-progress", "Video ready"))
    seen += page.evaluate(PAGE_TEXTS_JS)
    # the System status tab
    show_tab(page, "System status")
    page.wait_for_selector("#status-local")
    seen += page.evaluate(PAGE_TEXTS_JS)
    assert page.evaluate(EMOJI_JS, seen) == []
    # the logo is inline SVG; the words stay: the title, the seed buttons
    assert page.locator("#gator-title svg").count() == 1
    assert page.locator("#gator-title").inner_text().strip() == "Gator Studio"
    assert page.locator("#seed-random").inner_text().strip() == "Random"
    assert page.locator("#seed-reuse").inner_text().strip() == "Last seed"
