"""The result of one image: a typed object, saved with its parameters before anyone sees it.

Its fields use the parameter schema's names (engine/params.py) from request to result to PNG to API.
`to_dict()` is the API's JSON (no image); `result["seed"]` and `result.get("path")` read the same fields
for callers of the dict-returning API (the earlier names workflow, steps and guidance read too).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

from .params import RESULT_ALIASES

# What the PNG's parameters carry besides the request's own values.
SAVED_FIELDS = ("prompt", "negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "seed",
                "sampler", "loras", "vae", "strength", "mask_blur", "masked_content", "inpaint_area",
                "only_masked_padding", "outpaint", "hires_scale", "hires_resize_width", "hires_resize_height", "hires_steps", "hires_upscaler", "hires_checkpoint",
                "hires_sampler", "hires_prompt", "hires_negative_prompt", "clip_skip",
                "variation_seed", "variation_strength", "freeu", "cfg_rescale", "tiling", "controlnet", "controlnet_module",
                "controlnet_weight", "controlnet_start", "controlnet_end", "canny_low", "canny_high", "model",
                "model_id", "model_hash", "lora_hashes", "model_license", "backend", "server", "prompt_id",
                "comfyui_workflow", "user_workflow", "fallback_reason", "plot", "prompt_template", "negative_template")


@dataclass
class ImageResult:
    """One generated image (status "success") or why there is none (status "error", `error` a sentence)."""

    status: str
    error: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None
    loras: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "weight"}], the prompt's tags included
    vae: str | None = None  # a VAE file's name; None: the checkpoint's own
    strength: float | None = None  # denoising strength of img2img or of the hires pass (None: neither)
    mask_blur: int | None = None  # inpaint and outpaint (None: neither)
    masked_content: str | None = None  # what the masked part started from (A1111's "Masked content")
    inpaint_area: str | None = None
    only_masked_padding: int | None = None  # only for inpaint area "only masked"
    outpaint: dict[str, int] | None = None  # pixels added per side ({"left", "right", "up", "down"}; None: none)
    hires_scale: float | None = None  # the hires fix's upscale (None: no hires fix, or one by its resize size)
    hires_resize_width: int | None = None  # the hires fix's resize size (A1111's "Hires resize"), when one was set
    hires_resize_height: int | None = None
    hires_steps: int | None = None
    hires_upscaler: str | None = None
    hires_sampler: str | None = None  # the hires pass's own (None: the sampler's)
    hires_prompt: str | None = None  # the hires pass's own, with its LoRA tags (None: the prompt)
    hires_negative_prompt: str | None = None
    hires_checkpoint: str | None = None  # the model id the hires pass redrew with, when not the first pass's
    clip_skip: int | None = None  # A1111's Clip skip when one was used (None: the text encoder's last layer)
    variation_seed: int | None = None  # A1111's variation seed and strength, when one was mixed in (None: none)
    variation_strength: float | None = None
    freeu: bool | None = None  # True when FreeU was used (None: not)
    cfg_rescale: float | None = None  # the CFG rescale used (None: none)
    tiling: bool | None = None  # True for a seamless image (None: an ordinary one)
    first_pass_size: tuple[int, int] | None = None  # the hires fix's first pass (width, height); the image is larger
    controlnet: str | None = None  # the ControlNet's name (None: none); its preprocessor, weight and steps below
    controlnet_module: str | None = None
    controlnet_weight: float | None = None
    controlnet_start: float | None = None
    controlnet_end: float | None = None
    canny_low: int | None = None  # only for the canny preprocessor
    canny_high: int | None = None
    model: str | None = None  # the model's label
    model_id: str | None = None
    model_license: str | None = None  # the weights' license (engine/params.py MODEL_LICENSE)
    model_hash: str | None = None  # a checkpoint file's short SHA-256 (engine/file_hashes.py); None until known
    lora_hashes: str | None = None  # A1111's "Lora hashes" text ("name: 0123456789ab, ..."); None: none known
    backend: str | None = None  # the backend that made it
    server: str | None = None
    prompt_id: str | None = None
    comfyui_workflow: str | None = None  # the ComfyUI graph it ran: a template's name or the user's workflow's
    user_workflow: str | None = None  # the user's own ComfyUI workflow (engine/user_workflows.py); None: none
    graph: dict[str, Any] | None = field(default=None, repr=False)  # the ComfyUI graph sent (the PNG's prompt chunk)
    fallback_reason: str | None = None
    prompt_template: str | None = None  # the prompt before its {...} options and __wildcards__ were filled in
    negative_template: str | None = None  # (None: nothing was filled in; engine/wildcards.py)
    # an X/Y/Z plot's grid: its axes ({"script", "x_type", "x_values", ...}, engine/params.py PLOT_PARAMS); None
    # for any other image. The grid's other values are its first cell's, as A1111 records a grid.
    plot: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    path: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    image: Image.Image | None = field(default=None, repr=False)
    batch: list["ImageResult"] = field(default_factory=list)  # a batch's results, on the first one; a plot's cells

    def parameters(self) -> dict[str, Any]:
        """What is saved in the PNG and read back by "reuse parameters". A hires fix image is recorded as A1111
        records it: the size asked for (its first pass) with its "Hires upscale", so reusing it gives this image
        again, not one twice as large."""
        saved = {name: getattr(self, name) for name in SAVED_FIELDS}
        if self.first_pass_size:
            saved["width"], saved["height"] = self.first_pass_size
        return saved

    def to_dict(self, with_batch: bool = True) -> dict[str, Any]:
        """JSON-ready: every field but the image; a batch as a list of dicts."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("image", "batch", "graph")}
        out["warnings"] = list(self.warnings)
        out["timings"] = dict(self.timings)
        if self.batch and with_batch:
            out["batch"] = [item.to_dict(with_batch=False) for item in self.batch]
        return out

    def __getitem__(self, key: str) -> Any:
        key = RESULT_ALIASES.get(key, key)
        if key not in _NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        key = RESULT_ALIASES.get(key, key) if isinstance(key, str) else key
        return key in _NAMES and (key != "batch" or bool(self.batch))

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def keys(self) -> list[str]:
        return [name for name in _NAMES if name != "batch" or self.batch]


_NAMES = frozenset(f.name for f in fields(ImageResult))


def error_result(message: str, **known: Any) -> ImageResult:
    """A result with no image: `message` says why."""
    return ImageResult(status="error", error=message, **known)


__all__ = ["ImageResult", "error_result", "SAVED_FIELDS"]
