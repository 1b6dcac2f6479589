"""CFG rescale for a diffusers pipeline whose call has no `guidance_rescale` (SD 1.5 image to image and inpaint, the
ControlNet pipelines): the same rescale (diffusers' `rescale_noise_cfg`) reached through the UNet's output.

Those pipelines run the UNet on the negative and positive prompt together and sum `uncond + g * (text - uncond)`. A
forward hook on the UNet, for the pipeline call only, moves the positive half of each output so that this very sum
gives the rescaled prediction: `text' = uncond + (rescaled - uncond) / g`. The pipelines that take `guidance_rescale`
do the same sum and rescale themselves, so both paths give the same image.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

logger = logging.getLogger(__name__)


@contextmanager
def rescaled_guidance(pipe: Any, rescale: float, guidance: float) -> Iterator[None]:
    """While the pipeline runs: its guided prediction rescaled by `rescale` (0 to 1) at guidance scale `guidance`
    (nothing changes without classifier-free guidance, guidance 1 or less)."""
    if not rescale or guidance <= 1:
        yield
        return
    import torch
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    def hook(_module: Any, _args: Any, _kwargs: Any, output: Any) -> Any:
        sample = output[0] if isinstance(output, tuple) else output.sample
        if sample.shape[0] % 2:  # not a negative + positive batch
            return output
        uncond, text = sample.chunk(2)
        rescaled = rescale_noise_cfg(uncond + guidance * (text - uncond), text, guidance_rescale=rescale)
        moved = torch.cat([uncond, uncond + (rescaled - uncond) / guidance])
        if isinstance(output, tuple):
            return (moved, *output[1:])
        output.sample = moved
        return output

    handle = pipe.unet.register_forward_hook(hook, with_kwargs=True)
    logger.debug("CFG rescale %g through the UNet's output for %s", rescale, type(pipe).__name__)
    try:
        yield
    finally:
        handle.remove()
