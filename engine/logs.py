"""Log lines stay short: a message longer than MAX_CHARS (a long prompt echoed by a library, say) is cut,
so a log never prints a whole prompt."""
from __future__ import annotations

import logging

MAX_CHARS = 500


class ShortMessages(logging.Filter):
    """Cuts a record's message to MAX_CHARS, saying how long it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_CHARS:
            record.msg = f"{message[:MAX_CHARS]}… ({len(message):,} characters in all)"
            record.args = ()
        return True


def keep_log_lines_short(*libraries: str) -> None:
    """Put the filter on every handler of the root logger and of `libraries` (loggers with handlers of
    their own, such as a pipeline library that echoes prompts)."""
    for name in ("", *libraries):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, ShortMessages) for f in handler.filters):
                handler.addFilter(ShortMessages())
