"""Log lines stay short: long messages and long traceback lines are cut, short ones kept as they are."""
from __future__ import annotations

import io
import logging

from engine.logs import MAX_CHARS, ShortMessages


def _logged(emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ShortMessages())
    logger = logging.getLogger("test.short-lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_long_message_and_a_long_exception_text_are_cut():
    prompt = "a lighthouse on a cliff, " * 200  # 5,000 characters

    def emit(logger: logging.Logger) -> None:
        logger.warning("Prompt was %s", prompt)
        try:
            raise ValueError(f"cannot encode {prompt}")
        except ValueError:
            logger.exception("Generation failed")

    text = _logged(emit)
    assert prompt not in text and "characters in all)" in text
    assert max(len(line) for line in text.splitlines()) <= MAX_CHARS + 40
    assert "Traceback (most recent call last):" in text and "ValueError: cannot encode a lighthouse" in text


def test_short_lines_are_kept_whole():
    def emit(logger: logging.Logger) -> None:
        logger.info("Loaded %s in %.1f s", "tiny", 1.25)
        try:
            raise KeyError("model")
        except KeyError:
            logger.exception("Lookup failed")

    assert _logged(emit).splitlines()[0] == "Loaded tiny in 1.2 s"
    assert "KeyError: 'model'" in _logged(emit)
