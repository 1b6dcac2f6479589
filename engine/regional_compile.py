"""Regional compilation: only a UNet's repeated transformer blocks run compiled code, the rest stays eager.

diffusers' models name their repeated blocks (`_repeated_blocks`: SDXL's 70 and SD 1.x's 16 `BasicTransformerBlock`s).
Their class's `forward` is compiled once and every block of that class shares the graphs (one per hidden size and
token count), so tracing covers one block instead of the whole UNet: a fraction of the compile time, at some of the
speed-up (diffusers' `compile_repeated_blocks` does the same in place). Here each block chooses per call and thread:
inside `compiling` (the background compiler's thread) it may compile, inside `running` (a request routed to the
graphs) it only runs graphs made already (`torch._dynamo.run`: a block a graph does not fit runs eagerly), and
anywhere else it is the eager block.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

COMPILE, RUN = "compile", "run"
_routing = threading.local()  # .mode: COMPILE or RUN inside this thread's call, absent otherwise


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    before = getattr(_routing, "mode", None)
    _routing.mode = mode
    try:
        yield
    finally:
        _routing.mode = before


def repeated_blocks(unet: Any) -> list[Any]:
    """The UNet's modules whose class its `_repeated_blocks` names (empty when it names none)."""
    names = set(getattr(unet, "_repeated_blocks", None) or ())
    return [module for module in unet.modules() if type(module).__name__ in names]


class RegionalUNet:
    """The eager UNet with its repeated blocks compiled: `compiling(...)` calls it letting the blocks compile,
    `running(...)` using only graphs compiled already. ValueError when the UNet names no repeated blocks."""

    def __init__(self, unet: Any, backend: Any) -> None:
        import torch

        blocks = repeated_blocks(unet)
        if not blocks:
            raise ValueError(f"{type(unet).__name__} names no repeated blocks to compile")
        forwards: dict[type, tuple[Callable, Callable]] = {}
        for block in blocks:
            cls = type(block)
            if cls not in forwards:  # one compiled function per class: its graphs are shared by its blocks
                compiled = torch.compile(cls.forward, backend=backend, dynamic=False)
                forwards[cls] = (compiled, torch._dynamo.run(compiled))
            block.forward = _chooser(block, cls.forward, *forwards[cls])
        self.unet = unet
        self.blocks = len(blocks)

    def compiling(self, *args: Any, **kwargs: Any) -> Any:
        with _mode(COMPILE):
            return self.unet(*args, **kwargs)

    def running(self, *args: Any, **kwargs: Any) -> Any:
        with _mode(RUN):
            return self.unet(*args, **kwargs)


def _chooser(block: Any, eager: Callable, compiled: Callable, run_only: Callable) -> Callable:
    """`block.forward`: the compiled function or its run-only twin inside a RegionalUNet call, else the class's own."""
    def forward(*args: Any, **kwargs: Any) -> Any:
        mode = getattr(_routing, "mode", None)
        if mode == COMPILE:
            return compiled(block, *args, **kwargs)
        if mode == RUN:
            return run_only(block, *args, **kwargs)
        return eager(block, *args, **kwargs)
    return forward
