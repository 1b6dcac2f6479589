"""Log lines stay short: a message longer than MAX_CHARS (a long prompt echoed by a library, say) is cut, and so
is each line of a traceback (an exception's text may hold a prompt too), so a log never prints a whole prompt."""
from __future__ import annotations

import logging

MAX_CHARS = 500


def shortened(text: str) -> str:
    """`text` itself, or its first MAX_CHARS characters and how long it was."""
    return text if len(text) <= MAX_CHARS else f"{text[:MAX_CHARS]}… ({len(text):,} characters in all)"


class ShortMessages(logging.Filter):
    """Cuts a record's message, and each line of its traceback, to MAX_CHARS, saying how long it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_CHARS:
            record.msg, record.args = shortened(message), ()
        if record.exc_info and not record.exc_text:  # formatted here once; handlers' formatters then reuse it
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = "\n".join(shortened(line) for line in text.splitlines())
        return True


def keep_log_lines_short(*libraries: str) -> None:
    """Put the filter on every handler of the root logger and of `libraries` (loggers with handlers of
    their own, such as a pipeline library that echoes prompts)."""
    for name in ("", *libraries):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, ShortMessages) for f in handler.filters):
                handler.addFilter(ShortMessages())
