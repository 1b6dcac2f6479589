"""The table of bad inputs tried through the engine API, the app's API and the browser.

Each row: a label, the change to a good request, and the words the user must see.
README.md lists the same rows with the full message.
"""
from __future__ import annotations

GOOD = dict(prompt="a cat", width=64, height=64, num_inference_steps=2, seed=1)

BAD_INPUTS = [
    ("width not a multiple of 8", dict(width=100), "Width must be a multiple of 8"),
    ("height not a multiple of 8", dict(height=65), "Height must be a multiple of 8"),
    ("width below 64", dict(width=32), "Width must be between 64 and 2048"),
    ("height above 2048", dict(height=4096), "Height must be between 64 and 2048"),
    ("width not a number", dict(width="wide"), "Width must be a whole number"),
    ("zero steps", dict(num_inference_steps=0), "Steps must be a whole number from 1 to 150"),
    ("too many steps", dict(num_inference_steps=151), "Steps must be a whole number from 1 to 150"),
    ("negative guidance", dict(guidance_scale=-1), "Guidance scale must be between 0 and 50"),
    ("guidance not a number", dict(guidance_scale="lots"), "Guidance scale must be a number"),
    ("prompt not text", dict(prompt=7), "The prompt must be text"),
    ("empty prompt", dict(prompt=""), "The prompt is empty"),
    ("blank prompt", dict(prompt="   \n "), "The prompt is empty"),
    ("unknown model", dict(model="no-such-model"), "Unknown model 'no-such-model'"),
    ("unknown backend", dict(backend="gpu"), "Backend must be one of auto, comfyui, diffusers, cloud"),
    ("unknown sampler", dict(sampler="magic"), "Sampler must be one of"),
    ("seed out of range", dict(seed=2**40), "Seed must be -1 (random)"),
    ("FLUX forced onto diffusers", dict(model="flux.1-dev", backend="diffusers"), "runs on ComfyUI, not diffusers"),
    ("local model forced onto ComfyUI", dict(model="tiny", backend="comfyui"), "runs on diffusers, not ComfyUI"),
    ("ComfyUI forced while disabled", dict(backend="comfyui"), "ComfyUI is disabled"),
    ("cloud forced while off", dict(backend="cloud"), "Cloud APIs are off (ENABLE_CLOUD_APIS=0)"),
]



def api_kwargs(change: dict) -> dict:
    """A good request with `change`: the app's /generate_image takes the engine's own parameter names."""
    return {**GOOD, **change}
