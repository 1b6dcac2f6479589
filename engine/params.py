"""Every generation parameter declared once: its name, type, default, limits, step, label, help text and
A1111 metadata key. The declarations drive the validation sentences, the UI widgets' ranges and defaults,
the API endpoints' parameters, the PNG metadata and "reuse parameters"; the seed rules live here too.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable

RANDOM_SEED = -1
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Param:
    """One parameter. `kind` is "text", "int", "pixels" (int with a multiple), "float", "seed" or "choice"."""

    name: str
    kind: str
    default: Any
    label: str
    help: str = ""  # may name {minimum}, {maximum} and {multiple_of}
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    multiple_of: int | None = None
    a1111_key: str | None = None
    aliases: tuple[str, ...] = ()
    optional: bool = False  # None is accepted (means "the model's default")

    def problem(self, value: Any, subject: str | None = None) -> str | None:
        """A sentence saying what is wrong with `value`, or None when it is acceptable."""
        subject = subject or self.label
        if value is None and self.optional:
            return None
        if is_empty(value) and not self.optional and self.kind in EMPTY_HINTS:
            return f"{subject} is empty: enter {self.empty_hint()}."
        check = _CHECKS.get(self.kind)
        return check(self, value, subject) if check else None

    def from_text(self, text: str) -> Any:
        """`text`, a value of a PNG's settings line ("Steps: 20"), as this parameter's value: a whole number for
        int, pixels and seed ("2.0" is 2), a number for float, True for "true" of a bool, else the text itself.
        ValueError when it is not one ("1.5" for a whole number, "abc" for a number)."""
        text = text.strip()
        if self.kind in ("int", "pixels", "seed"):
            try:
                return int(text)
            except ValueError:
                number = float(text)
                if not number.is_integer():
                    raise ValueError(f"{text!r} is not a whole number") from None
                return int(number)
        if self.kind == "float":
            return float(text)
        if self.kind == "bool":
            return text.lower() == "true"
        return text

    def holds(self, value: Any) -> bool:
        """True when `value` is of this parameter's type, whatever its limits (None: not set): what a value saved in
        an image must be before a form or a request takes it."""
        return value is None or _HOLDS.get(self.kind, lambda _: True)(value)

    def empty_hint(self) -> str:
        """What to enter in an empty field: "a number of pixels", "a whole number from 1 to 150"."""
        return EMPTY_HINTS[self.kind].format(minimum=number_text(self.minimum), maximum=number_text(self.maximum))

    def widget(self) -> dict[str, Any]:
        """Keyword arguments for a UI number or slider: minimum, maximum, step, value, label, info."""
        out: dict[str, Any] = {"label": self.label}
        info = self.help.format(minimum=number_text(self.minimum), maximum=number_text(self.maximum),
                                multiple_of=self.multiple_of) if self.help else None
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum), ("step", self.step),
                           ("info", info)):
            if value is not None:
                out[key] = value
        if self.default is not None:
            out["value"] = self.default
        return out


# What to enter in an empty field, by kind (a sentence's end: "Width is empty: enter a number of pixels.").
EMPTY_HINTS = {"pixels": "a number of pixels", "int": "a whole number from {minimum} to {maximum}",
               "float": "a number from {minimum} to {maximum}"}


def _holds_loras(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(use, dict) and isinstance(use.get("name"), str) for use in value)


_HOLDS: dict[str, Callable[[Any], bool]] = {  # each kind's type (Param.holds); limits are Param.problem's
    "text": lambda v: isinstance(v, str), "prompt": lambda v: isinstance(v, str), "choice": lambda v: isinstance(v, str),
    "int": lambda v: is_whole(v), "pixels": lambda v: is_whole(v), "seed": lambda v: is_whole(v),
    "float": lambda v: is_number(v), "bool": lambda v: isinstance(v, bool), "loras": _holds_loras,
    "outpaint": lambda v: isinstance(v, (dict, list))}


def is_empty(value: Any) -> bool:
    """True for None and blank text: a field left empty."""
    return value is None or (isinstance(value, str) and not value.strip())


def is_whole(value: Any) -> bool:
    """True for ints and whole floats (never bools, NaN or infinities)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number_text(value: float | None) -> str:
    """A limit as a sentence shows it: 1 for an int, 0.5 or 1e+06 for a float."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_text(p: Param, value: Any, subject: str) -> str | None:
    if not isinstance(value, str):
        return f"The {subject.lower()} must be text."
    return None


def _check_prompt(p: Param, value: Any, subject: str) -> str | None:
    if not isinstance(value, str):
        return f"The {subject.lower()} must be text."
    if not value.strip():
        return f"The {subject.lower()} is empty: describe the image you want."
    return None


def _check_int(p: Param, value: Any, subject: str) -> str | None:
    if not is_whole(value) or not p.minimum <= int(value) <= p.maximum:
        return f"{subject} must be a whole number from {number_text(p.minimum)} to {number_text(p.maximum)} " \
               f"(got {value!r})."
    return None


def _check_pixels(p: Param, value: Any, subject: str) -> str | None:
    if not is_whole(value):
        return f"{subject} must be a whole number of pixels (got {value!r})."
    value = int(value)
    if not p.minimum <= value <= p.maximum:
        return f"{subject} must be between {p.minimum} and {p.maximum} pixels (got {value})."
    if p.multiple_of and value % p.multiple_of:
        return f"{subject} must be a multiple of {p.multiple_of} (got {value}; " \
               f"try {value // p.multiple_of * p.multiple_of})."
    return None


def _check_float(p: Param, value: Any, subject: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{subject} must be a number (got {value!r})."
    number = float(value)
    if not math.isfinite(number) or not p.minimum <= number <= p.maximum:
        return f"{subject} must be between {number_text(p.minimum)} and {number_text(p.maximum)} (got {value!r})."
    return None


def _check_seed(p: Param, value: Any, subject: str) -> str | None:
    if is_random_seed(value) or (is_whole(value) and RANDOM_SEED <= int(value) <= MAX_SEED):
        return None
    return f"{subject} must be -1 (random) or a whole number from 0 to {MAX_SEED} (got {value!r})."


def lora_uses(value: Any) -> list[tuple[Any, Any]]:
    """(name, weight) pairs from what a caller may hand over: None, a list of {"name", "weight"} dicts,
    ("name", weight) pairs, "name" or "name:weight" strings, or objects with name and weight."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
        value = [value]
    pairs = []
    for item in value:
        if isinstance(item, dict):
            pairs.append((item.get("name"), item.get("weight", 1.0)))
        elif isinstance(item, str):
            name, _, weight = item.partition(":")
            pairs.append((name.strip(), weight.strip() or 1.0))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            pairs.append((getattr(item, "name", item), getattr(item, "weight", None)))
    return pairs


def _check_loras(p: Param, value: Any, subject: str) -> str | None:
    pairs = lora_uses(value)
    if len(pairs) > MAX_LORAS:
        return f"At most {MAX_LORAS} LoRAs may be used at once (got {len(pairs)})."
    for name, weight in pairs:
        if not isinstance(name, str) or not name.strip():
            return "Each LoRA needs a name (the file name without its extension)."
        if isinstance(weight, str):
            try:
                weight = float(weight)
            except ValueError:
                return f"The weight of LoRA {name!r} must be a number (got {weight!r})."
        if not is_number(weight) or not p.minimum <= float(weight) <= p.maximum:
            return f"The weight of LoRA {name!r} must be between {number_text(p.minimum)} and " \
                   f"{number_text(p.maximum)} (got {weight!r})."
    return None


def outpaint_amounts(value: Any) -> tuple[Any, ...]:
    """(left, right, up, down) from what a caller may hand over: None or 0 (no outpaint), a {"right": 64} dict,
    four numbers, or the PNG's text ("right 64 down 32"); the values unchecked. ValueError for any other shape."""
    if value is None or value == 0 or (isinstance(value, str) and not value.strip()):
        return (0, 0, 0, 0)
    if isinstance(value, str):
        words = value.replace(",", " ").split()
        if len(words) % 2 or any(side not in OUTPAINT_SIDES for side in words[::2]):
            raise ValueError(value)
        value = dict(zip(words[::2], (float(n) if n.replace(".", "", 1).isdigit() else n for n in words[1::2])))
    if isinstance(value, dict):
        if set(value) - set(OUTPAINT_SIDES):
            raise ValueError(value)
        return tuple(value.get(side, 0) for side in OUTPAINT_SIDES)
    if isinstance(value, (list, tuple)) and len(value) == len(OUTPAINT_SIDES):
        return tuple(value)
    raise ValueError(value)


def outpaint_text(amounts: Any) -> str | None:
    """The PNG text of outpaint amounts ("right 64 down 32"), None for none: `outpaint_amounts` reads it back."""
    pairs = [f"{side} {int(n)}" for side, n in zip(OUTPAINT_SIDES, outpaint_amounts(amounts)) if n]
    return " ".join(pairs) or None


def _check_outpaint(p: Param, value: Any, subject: str) -> str | None:
    try:
        amounts = outpaint_amounts(value)
    except ValueError:
        return f"{subject} must be the pixels to add on each side, e.g. {{\"right\": 64}} or [left, right, up, down] " \
               f"(got {value!r})."
    return next((problem for side, n in zip(OUTPAINT_SIDES, amounts)
                 if (problem := _check_pixels(p, n, f"{subject} {side}"))), None)


def _check_bool(p: Param, value: Any, subject: str) -> str | None:
    if not isinstance(value, bool):
        return f"{subject} must be true or false (got {value!r})."
    return None


_CHECKS: dict[str, Callable[[Param, Any, str], str | None]] = {
    "text": _check_text, "prompt": _check_prompt, "int": _check_int, "pixels": _check_pixels, "float": _check_float,
    "seed": _check_seed, "loras": _check_loras, "outpaint": _check_outpaint, "bool": _check_bool,
}

# -- the declarations ------------------------------------------------------------------------------
PROMPT = Param("prompt", "prompt", "", "Prompt", "What the image shows.")
NEGATIVE_PROMPT = Param("negative_prompt", "text", "", "Negative prompt", "What the image should avoid.",
                        a1111_key="Negative prompt")
PIXELS_HELP = "{minimum} to {maximum} pixels, a multiple of {multiple_of}."
WIDTH = Param("width", "pixels", 1024, "Width", PIXELS_HELP, minimum=64, maximum=2048, step=8, multiple_of=8)
HEIGHT = Param("height", "pixels", 1024, "Height", PIXELS_HELP, minimum=64, maximum=2048, step=8, multiple_of=8)
STEPS = Param("num_inference_steps", "int", 20, "Steps", "Denoising steps: more is slower and finer.",
              minimum=1, maximum=150, step=1, a1111_key="Steps", aliases=("steps",))
GUIDANCE = Param("guidance_scale", "float", None, "Guidance scale",
                 "How closely the image follows the prompt (CFG; FLUX guidance). Empty: the model's default.",
                 minimum=0.0, maximum=50.0, step=0.5, a1111_key="CFG scale", aliases=("guidance", "cfg"),
                 optional=True)
SEED = Param("seed", "seed", RANDOM_SEED, "Seed", "-1 draws a random seed; the same seed repeats an image "
             "(0 to {maximum}).",
             minimum=RANDOM_SEED, maximum=MAX_SEED, step=1, a1111_key="Seed", optional=True)
SAMPLER = Param("sampler", "choice", "euler", "Sampler", "How each denoising step is taken.", a1111_key="Sampler")
MODEL = Param("model", "choice", "auto", "Model", "auto picks the best model available now.", a1111_key="Model")
BACKEND = Param("backend", "choice", "auto", "Backend", "auto: the first backend that can run the model.",
                a1111_key="Backend")
BATCH_COUNT = Param("batch_count", "int", 1, "Batch count",
                    "Images one after another; each takes the previous seed + 1 (with a variation strength, the "
                    "previous variation seed + 1).", minimum=1, maximum=8, step=1)

MAX_LORAS = 8
LORA_WEIGHT = Param("lora_weight", "float", 1.0, "LoRA weight", "How strongly a LoRA acts ({minimum} to {maximum}; 0 is "
                    "no LoRA).", minimum=-4.0, maximum=4.0, step=0.05)
LORAS = Param("loras", "loras", (), "LoRAs",
              "LoRAs by name (file name without extension) and weight ({minimum} to {maximum}), e.g. "
              '[{{"name": "detail", "weight": 0.8}}]; a <lora:name:weight> tag in the prompt adds one.',
              minimum=LORA_WEIGHT.minimum, maximum=LORA_WEIGHT.maximum, step=LORA_WEIGHT.step, optional=True)

VAE = Param("vae", "choice", "auto", "VAE", "auto: the checkpoint's own VAE; or a VAE file from a VAE/ folder.",
            a1111_key="VAE")

STRENGTH = Param("strength", "float", 0.75, "Denoising strength",
                 "How much img2img changes the init image: 0 keeps it, 1 draws anew.", minimum=0.0, maximum=1.0,
                 step=0.01, a1111_key="Denoising strength")
RESIZE_MODE = Param("resize_mode", "choice", "just resize", "Resize mode",
                    "How the init image meets the output size: just resize, crop and resize, resize and fill.")
MASK_BLUR = Param("mask_blur", "pixels", 4, "Mask blur", "Inpaint: how far the mask's edge is softened, so the "
                  "new pixels blend into the kept ones ({minimum} to {maximum} pixels).", minimum=0, maximum=64, step=1,
                  a1111_key="Mask blur")
INPAINT_AREA = Param("inpaint_area", "choice", "whole picture", "Inpaint area",
                     "whole picture: redraw the image with the mask; only masked: redraw just the masked part (plus "
                     "padding) at the full width x height, for more detail.", a1111_key="Inpaint area")
MASKED_CONTENT = Param("masked_content", "choice", "original", "Masked content",
                       "Inpaint: what the masked part starts from. original: what is there; fill: the colours around "
                       "it; latent noise: noise; latent nothing: empty latents. The last three make room for something "
                       "new (use a high denoising strength).", a1111_key="Masked content")
ONLY_MASKED_PADDING = Param("only_masked_padding", "pixels", 32, "Masked area padding",
                            "Only masked: pixels of context around the mask that are redrawn with it.", minimum=0,
                            maximum=256, step=4, a1111_key="Masked area padding")
OUTPAINT_SIDES = ("left", "right", "up", "down")
OUTPAINT = Param("outpaint", "outpaint", None, "Outpaint",
                 "Pixels to extend the init image by, per side (left, right, up, down: {minimum} to {maximum}, a "
                 "multiple of {multiple_of}); the new area is painted.", minimum=0, maximum=1024, step=8,
                 multiple_of=8, a1111_key="Outpaint", optional=True)
# What an image-to-image request adds (the init image and the mask themselves are pictures, not values).
IMAGE_INPUT_PARAMS: tuple[Param, ...] = (STRENGTH, RESIZE_MODE, MASK_BLUR, MASKED_CONTENT, INPAINT_AREA,
                                         ONLY_MASKED_PADDING, OUTPAINT)

HIRES_SCALE = Param("hires_scale", "float", 1.0, "Hires upscale",
                    "Hires fix: above 1, the image is made at width x height, upscaled by this and redrawn.",
                    minimum=1.0, maximum=4.0, step=0.05, a1111_key="Hires upscale")
HIRES_RESIZE_HELP = ("The final {side} instead of Hires upscale; 0: it follows the other side. With both set, the "
                     "picture is cropped at the centre to their shape.")
HIRES_RESIZE_WIDTH = Param("hires_resize_width", "pixels", 0, "Resize width to", HIRES_RESIZE_HELP.format(side="width"),
                           minimum=0, maximum=WIDTH.maximum, step=8, multiple_of=WIDTH.multiple_of)
HIRES_RESIZE_HEIGHT = Param("hires_resize_height", "pixels", 0, "Resize height to",
                            HIRES_RESIZE_HELP.format(side="height"), minimum=0, maximum=HEIGHT.maximum, step=8,
                            multiple_of=HEIGHT.multiple_of)
HIRES_RESIZE_KEY = "Hires resize"  # A1111's one settings-line entry for both: "Hires resize: 1024x1536"
HIRES_STRENGTH = Param("hires_strength", "float", 0.5, "Hires denoising strength",
                       "How much the hires pass redraws the upscaled image: 0 keeps it, 1 draws anew.",
                       minimum=0.0, maximum=1.0, step=0.01)
HIRES_STEPS = Param("hires_steps", "int", 0, "Hires steps", "Steps of the hires pass; 0: the same as Steps.",
                    minimum=0, maximum=150, step=1, a1111_key="Hires steps")
HIRES_UPSCALER = Param("hires_upscaler", "choice", "Lanczos", "Hires upscaler", "How the image is enlarged between "
                       "the two passes.", a1111_key="Hires upscaler")
SAME_SAMPLER = "same"  # the hires pass samples as the first did
HIRES_SAMPLER = Param("hires_sampler", "choice", SAME_SAMPLER, "Hires sampler",
                      "The hires pass's sampler; same: the first pass's.", a1111_key="Hires sampler")
HIRES_PROMPT = Param("hires_prompt", "text", "", "Hires prompt", "The hires pass's prompt, with its own LoRA tags and "
                     "wildcards (the chosen styles apply to it too); empty: the prompt.", a1111_key="Hires prompt")
HIRES_NEGATIVE_PROMPT = Param("hires_negative_prompt", "text", "", "Hires negative prompt",
                              "The hires pass's negative prompt; empty: the negative prompt.",
                              a1111_key="Hires negative prompt")
SAME_CHECKPOINT = "Use same checkpoint"  # A1111's words: the hires pass redraws with the first pass's model
HIRES_CHECKPOINT = Param("hires_checkpoint", "choice", SAME_CHECKPOINT, "Hires checkpoint",
                         "The model the hires pass redraws with (a detail model after a composition model); "
                         f"{SAME_CHECKPOINT}: the first pass's.", a1111_key="Hires checkpoint")
CLIP_SKIP = Param("clip_skip", "int", 1, "Clip skip", "1 uses the prompt's text encoder to its last layer, 2 stops "
                  "one layer early (many anime models want 2). For SD 1.x models; others say they ignore it.",
                  minimum=1, maximum=12, step=1, a1111_key="Clip skip")
# A1111's variation seed: the starting noise moved toward a second seed's (spherically), for variations of an image
VARIATION_SEED = Param("variation_seed", "seed", RANDOM_SEED, "Variation seed",
                       "The second seed mixed in; -1 draws one. A batch keeps the seed and steps this one.", minimum=RANDOM_SEED, maximum=MAX_SEED, step=1, a1111_key="Variation seed",
                       optional=True)
VARIATION_STRENGTH = Param("variation_strength", "float", 0.0, "Variation strength",
                           "0: the seed's own image, 1: the variation seed's, 0.1 to 0.3: small variations. Text to "
                           "image and image to image, on this machine.",
                           minimum=0.0, maximum=1.0, step=0.01, a1111_key="Variation seed strength")

# FreeU (ComfyUI's core FreeU node, diffusers' enable_freeu): the UNet's backbone and skip features re-weighted while it
# draws, with the b1, b2, s1, s2 of the model's family (presets/families.yaml)
FREEU = Param("freeu", "bool", False, "FreeU", "Re-weights the UNet's features while it draws (often crisper, more "
              "saturated detail; the values are the family's, in presets/families.yaml). SD 1.x, SD 2.x and SDXL; "
              "FLUX and your own ComfyUI workflows ignore it and say so.", a1111_key="FreeU")
# CFG rescale (Lin et al. 2023: diffusers' guidance_rescale, ComfyUI's core RescaleCFG node)
CFG_RESCALE = Param("cfg_rescale", "float", 0.0, "CFG rescale",
                    "Pulls the guided prediction back to the spread of the prompt's own, against the washed-out, "
                    "overexposed look strong guidance gives v-prediction models: 0 is off, 0.7 the usual value for "
                    "them ({minimum} to {maximum}).", minimum=0.0, maximum=1.0, step=0.05, a1111_key="CFG rescale")
# A1111's Tiling: a seamless image that tiles as a texture (engine/backends/tiling.py)
TILING = Param("tiling", "bool", False, "Tiling", "A seamless image: its right edge continues its left and its bottom "
               "its top, so it tiles as a texture. Made on this machine.", a1111_key="Tiling")

# A1111's Checkpoint merger (engine/merge.py): how much of B (weighted sum) or of B − C (add difference)
MERGE_MULTIPLIER = Param("multiplier", "float", 0.3, "Multiplier (M)", "Weighted sum: A × (1 − M) + B × M; add "
                         "difference: A + (B − C) × M ({minimum} to {maximum}).", minimum=0.0, maximum=1.0, step=0.05)

UPSCALE_BY = Param("upscale_by", "float", 2.0, "Upscale by", "How many times larger the upscaled image is.",
                   minimum=1.0, maximum=4.0, step=0.05, a1111_key="Postprocess upscale by")
UPSCALER = Param("upscaler", "choice", "Lanczos", "Upscaler", "How the image is enlarged.",
                 a1111_key="Postprocess upscaler")
# What an upscale of a finished image records (the names of A1111's Extras tab).
POSTPROCESS_PARAMS: tuple[Param, ...] = (UPSCALE_BY, UPSCALER)

# What a result records that no request sets: the license of the weights that made it (presets/models.yaml; a user's
# checkpoint's own header metadata, "unknown" without it), and a checkpoint file's hash as A1111 writes it.
MODEL_LICENSE = Param("model_license", "text", None, "Model license", "The license of the weights that made the image.",
                      a1111_key="Model license", optional=True)
MODEL_HASH = Param("model_hash", "text", None, "Model hash", "The checkpoint file's SHA-256, its first 10 hex digits "
                   "(how A1111 and Civitai recognise a checkpoint).", a1111_key="Model hash", optional=True)
LORA_HASHES = Param("lora_hashes", "text", None, "Lora hashes", "Each LoRA's name and the first 12 hex digits of "
                    "its tensor data's SHA-256, as A1111 writes them.", a1111_key="Lora hashes", optional=True)
# The prompts as written, before their {...} options and __wildcards__ were filled in (the keys A1111's Dynamic
# Prompts writes); the image's own prompts are the filled-in ones.
PROMPT_TEMPLATE = Param("prompt_template", "text", None, "Template", "The prompt as written, before its options "
                        "and wildcards were filled in.", a1111_key="Template", optional=True)
NEGATIVE_TEMPLATE = Param("negative_template", "text", None, "Negative Template", "The negative prompt as written, "
                          "before its options and wildcards were filled in.", a1111_key="Negative Template",
                          optional=True)
RESULT_PARAMS: tuple[Param, ...] = (MODEL_LICENSE, MODEL_HASH, LORA_HASHES, PROMPT_TEMPLATE, NEGATIVE_TEMPLATE)

# An X/Y/Z plot's axes (engine/xyz_plot.py), recorded in its grid's PNG under the names A1111's script writes.
NO_AXIS = "Nothing"
PROMPT_SR = Param("prompt_sr", "text", None, "Prompt S/R", "Search and replace, as A1111's: the first value is a word or "
                  "phrase of the prompt or negative prompt (LoRA tags included), and each value makes a cell with it in "
                  "that place.", aliases=("prompt s/r", "prompt search/replace", "search/replace"))
XYZ_SCRIPT = "X/Y/Z plot"
PLOT_SCRIPT = Param("script", "text", None, "Script", "The script that made the image.", a1111_key="Script",
                    optional=True)
PLOT_PARAMS: tuple[Param, ...] = (PLOT_SCRIPT, *(param for axis in "XYZ" for param in (
    Param(f"{axis.lower()}_type", "choice", NO_AXIS, f"{axis} type", f"What the plot varies along {axis}.",
          a1111_key=f"{axis} Type"),
    Param(f"{axis.lower()}_values", "text", "", f"{axis} values", "A list (1, 2, 3; quoted names may hold commas) or "
          "for numbers a range: 1-5, 1-10 (+3) counts in steps of 3, 10-20 [3] spreads 3 values.",
          a1111_key=f"{axis} Values"),
    Param(f"{axis.lower()}_fixed_values", "text", None, f"Fixed {axis} values", "The seeds drawn for -1 on a Seed "
          "axis.", a1111_key=f"Fixed {axis} Values", optional=True))))
NO_CONTROLNET = "none"
CONTROLNET = Param("controlnet", "choice", NO_CONTROLNET, "ControlNet model",
                   "From a ControlNet/ or controlnet/ folder or a ComfyUI server, for the model's family.",
                   a1111_key="Model")
CONTROLNET_MODULE = Param("controlnet_module", "choice", "canny", "Preprocessor",
                          "canny: edges; lineart_standard: a drawing's dark lines; none: the image is the map.",
                          a1111_key="Module")
CONTROLNET_WEIGHT = Param("controlnet_weight", "float", 1.0, "Control weight",
                          "How strongly the control map steers the picture: 0 not at all ({minimum} to {maximum}).",
                          minimum=0.0, maximum=2.0, step=0.05, a1111_key="Weight")
CONTROLNET_START = Param("controlnet_start", "float", 0.0, "Guidance start",
                         "The fraction of the steps after which the ControlNet starts to steer (0: from the first).",
                         minimum=0.0, maximum=1.0, step=0.01, a1111_key="Guidance Start")
CONTROLNET_END = Param("controlnet_end", "float", 1.0, "Guidance end",
                       "The fraction of the steps after which it stops steering (1: to the last); after the start.",
                       minimum=0.0, maximum=1.0, step=0.01, a1111_key="Guidance End")
CANNY_LOW = Param("canny_low", "int", 100, "Canny low threshold",
                  "Canny: edges weaker than this are dropped unless they join a strong one ({minimum} to {maximum}).",
                  minimum=1, maximum=255, step=1, a1111_key="Threshold A")
CANNY_HIGH = Param("canny_high", "int", 200, "Canny high threshold",
                   "Canny: edges stronger than this are always kept; lower finds more edges ({minimum} to {maximum}).",
                   minimum=1, maximum=255, step=1, a1111_key="Threshold B")
# One ControlNet unit. Its A1111 keys are those inside sd-webui-controlnet's `ControlNet 0: "Module: canny, ..."`
# entry (engine/outputs.py writes and reads it), not keys of the parameters line itself.
CONTROLNET_PARAMS: tuple[Param, ...] = (CONTROLNET, CONTROLNET_MODULE, CONTROLNET_WEIGHT, CONTROLNET_START,
                                        CONTROLNET_END, CANNY_LOW, CANNY_HIGH)

NO_WORKFLOW = "none"
USER_WORKFLOW = Param("user_workflow", "choice", NO_WORKFLOW, "ComfyUI workflow",
                      "Your own ComfyUI workflow (API format, from the workflows folder): the prompts, seed, steps, "
                      "guidance, sampler, size, model and init image go into it; the rest runs as in the file. It "
                      "runs on ComfyUI only.", a1111_key="ComfyUI workflow")

# In the order of the public signatures (generate_image, the /generate_image endpoint).
PARAMS: tuple[Param, ...] = (PROMPT, NEGATIVE_PROMPT, WIDTH, HEIGHT, STEPS, GUIDANCE, SEED, MODEL, BACKEND, SAMPLER,
                             BATCH_COUNT, LORAS, VAE, HIRES_SCALE, HIRES_STRENGTH, HIRES_STEPS, HIRES_UPSCALER,
                             CLIP_SKIP, VARIATION_SEED, VARIATION_STRENGTH, FREEU, CFG_RESCALE, HIRES_SAMPLER,
                             HIRES_PROMPT, HIRES_NEGATIVE_PROMPT, HIRES_CHECKPOINT, TILING, HIRES_RESIZE_WIDTH,
                             HIRES_RESIZE_HEIGHT)
BY_NAME = {p.name: p for p in (*PARAMS, *IMAGE_INPUT_PARAMS, *POSTPROCESS_PARAMS, *RESULT_PARAMS, LORA_WEIGHT,
                               *PLOT_PARAMS, *CONTROLNET_PARAMS, USER_WORKFLOW)}
ALIASES = {alias: p.name for p in PARAMS for alias in p.aliases}
RESULT_ALIASES = {**ALIASES, "workflow": BACKEND.name}  # also what results and PNGs of earlier versions said


# -- seeds -------------------------------------------------------------------------------------------
def is_random_seed(seed: Any) -> bool:
    """None, "" and -1 ask for a random seed."""
    if seed is None or seed == "":
        return True
    return is_whole(seed) and int(seed) == RANDOM_SEED


def concrete_seed(seed: Any, rng: random.Random | None = None) -> int:
    """The seed itself, or one drawn from `rng` when `seed` asks for a random one."""
    if is_random_seed(seed):
        return (rng or random).randint(0, MAX_SEED)
    return int(seed)


def seed_after(seed: int, offset: int) -> int:
    """The seed `offset` places after `seed` (batches, increment policies), wrapping past MAX_SEED."""
    return (int(seed) + offset) % (MAX_SEED + 1)


def seed_input(value: Any) -> Any:
    """A seed as a form or API hands it over: None for random (-1, empty), whole floats as ints; anything
    else passes through for validation to name."""
    if is_random_seed(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if number == RANDOM_SEED:
        return None
    return int(number) if number.is_integer() else value


def a1111_keys(params: Iterable[Param] = (*PARAMS, *IMAGE_INPUT_PARAMS, *POSTPROCESS_PARAMS, *RESULT_PARAMS,
                                          *PLOT_PARAMS, USER_WORKFLOW)) \
        -> dict[str, str]:
    """A1111 metadata key -> parameter name."""
    return {p.a1111_key: p.name for p in params if p.a1111_key}
