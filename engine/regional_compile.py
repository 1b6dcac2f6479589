"""Regional compilation: only a UNet's repeated transformer blocks run compiled code, the rest stays eager.

diffusers' models name their repeated blocks (`_repeated_blocks`: SDXL's 70 and SD 1.x's 16 `BasicTransformerBlock`s).
Their class's `forward` is compiled once and every block of that class shares the graphs (one per hidden size and
token count), so tracing covers one block instead of the whole UNet: a fraction of the compile time, at some of the
speed-up (diffusers' `compile_repeated_blocks`, which compiles in place; here each block chooses per call, so only
the calls routed to the compiled UNet use the graphs and an eager call in another thread never does).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

# A block class is traced once per (hidden size, token count) it meets in one image: up to 4 levels in SD 1.x
# (64x64 to 8x8 latents), 2 in SDXL; times the compiled image sizes (compiled.MAX_COMPILED_SHAPES).
GRAPHS_PER_IMAGE_SIZE = 4

_routing = threading.local()  # .compiled: this thread's UNet call runs the blocks' graphs


@contextmanager
def _compiled_blocks() -> Iterator[None]:
    before = getattr(_routing, "compiled", False)
    _routing.compiled = True
    try:
        yield
    finally:
        _routing.compiled = before


def repeated_blocks(unet: Any) -> list[Any]:
    """The UNet's modules whose class its `_repeated_blocks` names (empty when it names none)."""
    names = set(getattr(unet, "_repeated_blocks", None) or ())
    return [module for module in unet.modules() if type(module).__name__ in names]


class RegionalUNet:
    """Calls the eager UNet with its repeated blocks running their compiled `forward` (this thread, this call only).
    ValueError when the UNet names no repeated blocks."""

    def __init__(self, unet: Any, backend: Any, max_image_sizes: int) -> None:
        import torch

        blocks = repeated_blocks(unet)
        if not blocks:
            raise ValueError(f"{type(unet).__name__} names no repeated blocks to compile")
        limit = GRAPHS_PER_IMAGE_SIZE * max_image_sizes
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
        compiled_forward: dict[type, Callable] = {}
        for block in blocks:
            cls = type(block)
            if cls not in compiled_forward:  # one compiled function per class: its graphs are shared by its blocks
                compiled_forward[cls] = torch.compile(cls.forward, backend=backend, dynamic=False)
            block.forward = _chooser(block, cls.forward, compiled_forward[cls])
        self.unet = unet
        self.blocks = len(blocks)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _compiled_blocks():
            return self.unet(*args, **kwargs)


def _chooser(block: Any, eager: Callable, compiled: Callable) -> Callable:
    """`block.forward`: the compiled function inside a RegionalUNet call, the class's own one otherwise."""
    def forward(*args: Any, **kwargs: Any) -> Any:
        if getattr(_routing, "compiled", False):
            return compiled(block, *args, **kwargs)
        return eager(block, *args, **kwargs)
    return forward
