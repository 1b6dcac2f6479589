"""A1111's variation seed in image to image: the noise an img2img pipeline adds to the encoded init image is moved
spherically toward the noise the pipeline would add for the variation seed, as text to image moves its starting noise.
The scheduler's `add_noise` is wrapped for one call: the noise the pipeline drew from the seed, moved by the variation
strength toward the variation seed's, drawn as the pipeline draws its own (its generator first samples the encoded
init image, then the noise), so strength 1 adds the noise the variation seed's own image to image adds (the encoded
init image is still sampled with the seed)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def noise_moved_toward(scheduler: Any, other_seed: int, strength: float,
                       slerp: Callable[[Any, Any, float], Any]) -> Iterator[None]:
    """Inside the block, `scheduler.add_noise(samples, noise, timesteps)` adds `noise` moved toward `other_seed`'s
    noise of the same shape by `strength` (0: the seed's own noise, 1: the other seed's)."""
    import torch

    plain = scheduler.add_noise

    def add_noise(samples: Any, noise: Any, timesteps: Any) -> Any:
        drawn = torch.Generator("cpu").manual_seed(int(other_seed))
        torch.randn(tuple(samples.shape), generator=drawn)  # the pipeline's first draw: the init image's latent sample
        other = torch.randn(tuple(noise.shape), generator=drawn)
        moved = slerp(noise.float().cpu(), other, float(strength)).to(noise.device, noise.dtype)
        return plain(samples, moved, timesteps)

    scheduler.add_noise = add_noise
    try:
        yield
    finally:
        del scheduler.add_noise  # the class's own again
