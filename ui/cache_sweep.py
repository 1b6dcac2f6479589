"""Gradio keeps a copy of every picture the app shows (each step preview, each result) in its cache folder
(GRADIO_TEMP_DIR, else <temp>/gradio). The copies are swept here: every hour those a day old, and all of them when
the app stops; the originals stay in the outputs folder. (Gradio's own `delete_cache` walks its sets of files while
requests add to them, and the error that can raise ends its sweeping for good.)
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, AsyncIterator, Callable

logger = logging.getLogger(__name__)

CACHE_SWEEP = (3600, 24 * 3600)  # (sweep every, delete when older than), in seconds


def sweep(blocks: Any, age_s: float | None) -> int:
    """Delete the files `blocks` put in Gradio's cache that are older than `age_s` seconds (all of them for None),
    but those a component keeps; returns how many went."""
    kept: set[str] = set()
    for component in list(blocks.blocks.values()):
        kept.update(getattr(component, "keep_in_cache", ()))
    removed, now = 0, time.time()
    for files in list(blocks.temp_file_sets):
        for name in list(files):  # a copy: requests add to the set meanwhile
            if name in kept:
                continue
            try:
                if age_s is None or now - os.lstat(name).st_ctime > age_s:
                    os.remove(name)
                    removed += 1
                else:
                    continue
            except FileNotFoundError:
                pass
            files.discard(name)
    return removed


def cache_lifespan(blocks: Any, every_s: float, age_s: float) -> Callable[[Any], Any]:
    """A lifespan for the app (Gradio's `app_kwargs["lifespan"]`) that sweeps `blocks`' copies while it serves and
    all of them when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async def sweeping() -> None:
            while True:
                await asyncio.sleep(every_s)
                try:
                    removed = await asyncio.to_thread(sweep, blocks, age_s)
                except OSError as err:  # a file that will not go (permissions): tried again next time
                    logger.warning("Could not sweep Gradio's cache: %s", err)
                    continue
                if removed:
                    logger.info("Swept %d old copies from Gradio's cache.", removed)

        task = asyncio.create_task(sweeping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(OSError):
                sweep(blocks, None)

    return lifespan
