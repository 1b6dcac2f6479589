"""A1111's web API (`/sdapi/v1/...`, as its `--api` serves it) in the engine's terms: a txt2img or img2img body
becomes `AIModelManager.generate_image` arguments, a result becomes A1111's answer, and the model, sampler and
schedule lists read as A1111's. The routes themselves are ui/a1111_api.py's.

Fields this app has no counterpart for (restore_faces, alwayson_scripts, eta, s_churn...) are ignored, as A1111
ignores what a script it lacks would read; a field it has, with a wrong value, is the engine's sentence.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

from PIL import Image, UnidentifiedImageError

from . import params as P
from .embedded_text import PARAMETERS, embedded_texts
from .errors import InvalidRequest
from .file_hashes import without_hash
from .inpaint import FILL, LATENT_NOISE, LATENT_NOTHING, ONLY_MASKED, ORIGINAL, WHOLE_PICTURE
from .input_images import JUST_RESIZE, RESIZE_MODES as INPUT_RESIZE_MODES
from .limits import Limits
from .registry import load_samplers, sampler_label
from .request import sampler_key
from .result import ImageResult

AUTOMATIC = "Automatic"  # A1111 1.9's schedule type: the sampler's own
PLAIN_SCHEDULES = ("uniform", "normal")  # A1111's names for the schedule a sampler label without one takes
SCHEDULE_NAMES = ("Karras", "Exponential")  # the schedule types a sampler label here may end with
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # what a base64 image may be (no other format's decoder is run)
RESIZE_MODES = (*INPUT_RESIZE_MODES, JUST_RESIZE)  # its resize_mode 0-3 (3, latent upscale: just resize here)
INPAINTING_FILL = (FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING)  # its inpainting_fill 0-3


def _schedule_of(label: str) -> tuple[str, str]:
    """A sampler label split into A1111 1.9's sampler name and schedule type ("DPM++ 2M Karras" -> "DPM++ 2M",
    "Karras"); a label without one has "" for its schedule."""
    name, _, last = label.rpartition(" ")
    return (name, last) if name and last in SCHEDULE_NAMES else (label, "")


def a1111_sampler(name: Any, schedule: Any = None) -> str:
    """Our sampler key (presets/samplers.yaml) for A1111's sampler and schedule type ("DPM++ 2M", "Karras"); no
    schedule, or "Automatic", is the sampler's own schedule in A1111 1.9 (the entry marked `a1111_automatic`, else
    the plain label). A label that carries its schedule ("DPM++ 2M Karras", as /samplers of older A1111 listed them)
    stands for itself. An unknown pair comes back as written, for validation to name."""
    label = str(name or "").strip() or P.SAMPLER.default
    schedule = str(schedule or "").strip()
    samplers = load_samplers()
    own_schedule = _schedule_of(label)[1]
    if own_schedule and sampler_key(label) in samplers and schedule.lower() in ("", AUTOMATIC.lower(),
                                                                                own_schedule.lower()):
        return sampler_key(label)
    if schedule.lower() in PLAIN_SCHEDULES:
        return sampler_key(label)
    if schedule and schedule.lower() != AUTOMATIC.lower():
        return sampler_key(f"{label} {schedule.title() if schedule.islower() else schedule}")
    own = next((key for key, entry in samplers.items() if entry.get("a1111_automatic")
                and _schedule_of(str(entry.get("label", "")))[0].lower() == label.lower()), None)
    return own or sampler_key(label)


def _flag(value: Any) -> bool:
    """A1111's boolean field, as its API reads one: true/false, 1/0, or their text."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _text(body: dict[str, Any], field: str) -> Any:
    """A text field; left out or null is empty (anything else goes on for validation to name)."""
    value = body.get(field)
    return "" if value is None else value


def decoded_image(value: Any, what: str, limits: Limits) -> Image.Image:
    """A base64 image (A1111's init_images and mask, a `data:` URL or bare) as a PIL image, its size checked against
    `limits` before its pixels are decoded; InvalidRequest with a sentence for anything else."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"The {what} must be a base64-encoded image.")
    data = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"The {what} is not valid base64.") from None
    try:
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
        problem = limits.input_image_problem(image.width, image.height, what)
        if problem:
            raise InvalidRequest(problem)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise InvalidRequest(f"The {what} is not a PNG, JPEG or WebP image ({type(err).__name__}).") from None
    return image


def _choice(options: tuple[str, ...], value: Any, name: str) -> str:
    """A1111's number for one of `options` (0-based); a sentence for another."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(options):
        raise InvalidRequest(f"{name} must be a whole number from 0 to {len(options) - 1} (got {value!r}).")
    return options[value]


def generation_arguments(body: dict[str, Any], default_model: str | None, manager: Any) -> dict[str, Any]:
    """`generate_image` keyword arguments for an A1111 txt2img or img2img body; `default_model` is the options'
    checkpoint (a request's override_settings.sd_model_checkpoint wins); `manager` applies A1111's `styles` (to the
    hires prompts too) and its limits cap the images decoded. Steps, width, height and CFG scale left out are not
    set (the model's own)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    overrides = body.get("override_settings") or {}
    if not isinstance(overrides, dict):
        raise InvalidRequest("override_settings must be a JSON object.")
    prompt, negative = _text(body, "prompt"), _text(body, "negative_prompt")
    styles = body.get("styles")
    if styles:
        if not isinstance(styles, list) or not all(isinstance(name, str) for name in styles):
            raise InvalidRequest(f"styles must be a list of style names (got {styles!r}).")
        prompt, negative = manager.styled(styles, prompt if isinstance(prompt, str) else "",
                                          negative if isinstance(negative, str) else "")
    model = overrides.get("sd_model_checkpoint") or default_model
    runs = body.get("batch_size", 1), body.get("n_iter", 1)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in runs):
        raise InvalidRequest(f"batch_size and n_iter must be whole numbers of at least 1 (got {runs[0]!r} and "
                             f"{runs[1]!r}).")
    args: dict[str, Any] = {
        "prompt": prompt, "negative_prompt": negative,
        "guidance_scale": body.get("cfg_scale"), "seed": P.seed_input(body.get("seed", -1)),
        "sampler": a1111_sampler(body.get("sampler_name") or body.get("sampler_index"), body.get("scheduler")),
        "batch_count": runs[0] * runs[1], "model": without_hash(model) if isinstance(model, str) else P.MODEL.default,
        "tiling": _flag(body.get("tiling", False)),
    }
    for field, name in (("steps", P.STEPS.name), ("width", P.WIDTH.name), ("height", P.HEIGHT.name)):
        if body.get(field) is not None:  # left out: the model's own (A1111 would take 50 steps at 512 x 512)
            args[name] = body[field]
    if overrides.get("sd_vae") not in (None, "Automatic", "None"):
        args["vae"] = overrides["sd_vae"]
    if overrides.get("CLIP_stop_at_last_layers") is not None:
        args["clip_skip"] = overrides["CLIP_stop_at_last_layers"]
    if body.get("subseed_strength") not in (None, 0):  # a variation (its value checked as the form's is)
        args.update(variation_seed=P.seed_input(body.get("subseed", -1)), variation_strength=body["subseed_strength"])
    if _flag(body.get("enable_hr")):
        hires_prompt, hires_negative = _text(body, "hr_prompt"), _text(body, "hr_negative_prompt")
        if styles and isinstance(hires_prompt, str) and isinstance(hires_negative, str):
            hires_prompt, hires_negative = manager.styled_hires(styles, hires_prompt, hires_negative)
        args.update(hires_scale=body.get("hr_scale", 2.0), hires_strength=body.get("denoising_strength", 0.7),
                    hires_steps=body.get("hr_second_pass_steps", 0), hires_resize_width=body.get("hr_resize_x", 0),
                    hires_resize_height=body.get("hr_resize_y", 0), hires_prompt=hires_prompt,
                    hires_negative_prompt=hires_negative)
        if body.get("hr_upscaler"):
            args["hires_upscaler"] = body["hr_upscaler"]
        if body.get("hr_sampler_name"):
            args["hires_sampler"] = a1111_sampler(body["hr_sampler_name"], body.get("hr_scheduler"))
        if body.get("hr_checkpoint_name"):
            args["hires_checkpoint"] = without_hash(str(body["hr_checkpoint_name"]))
    if "init_images" in body:
        args.update(_img2img_arguments(body, manager.settings.limits))
    return args


def _img2img_arguments(body: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The image to image and inpaint part of an img2img body."""
    images = body.get("init_images")
    if not isinstance(images, list) or not images:
        raise InvalidRequest("init_images must list one base64-encoded image.")
    args: dict[str, Any] = {"init_image": decoded_image(images[0], "init image", limits),
                            "strength": body.get("denoising_strength", 0.75),
                            "resize_mode": _choice(RESIZE_MODES, body.get("resize_mode", 0), "resize_mode")}
    if body.get("mask"):
        mask = decoded_image(body["mask"], "mask", limits).convert("L")
        if _flag(body.get("inpainting_mask_invert")):
            mask = mask.point(lambda value: 255 - value)
        args.update(mask=mask, mask_blur=body.get("mask_blur", 4),
                    masked_content=_choice(INPAINTING_FILL, body.get("inpainting_fill", 1), "inpainting_fill"),
                    inpaint_area=ONLY_MASKED if _flag(body.get("inpaint_full_res")) else WHOLE_PICTURE,
                    only_masked_padding=body.get("inpaint_full_res_padding", 32))
    return args


def _png_base64(path: str) -> str:
    with open(path, "rb") as file:
        return base64.b64encode(file.read()).decode("ascii")


def a1111_answer(result: ImageResult, body: dict[str, Any]) -> dict[str, Any]:
    """A1111's answer to a txt2img or img2img call that made `result` (a batch's images all): the PNGs as base64
    (their parameters in them), the request as sent, and `info`, a JSON text with the seeds and each image's
    parameters text."""
    made = [item for item in (result.batch or [result]) if item.status == "success" and item.path]
    infotexts = [embedded_texts(item.path).get(PARAMETERS, "") for item in made]
    first = made[0]
    info = {"prompt": first.prompt, "negative_prompt": first.negative_prompt, "seed": first.seed,
            "all_prompts": [item.prompt for item in made], "all_seeds": [item.seed for item in made],
            "all_negative_prompts": [item.negative_prompt for item in made],
            "subseed": first.variation_seed, "all_subseeds": [item.variation_seed for item in made],
            "width": first.width, "height": first.height, "steps": first.num_inference_steps,
            "cfg_scale": first.guidance_scale, "sampler_name": sampler_label(first.sampler),
            "sd_model_name": first.model, "denoising_strength": first.strength,
            "infotexts": infotexts, "warnings": list(first.warnings)}
    sent = {key: value for key, value in body.items() if key not in ("init_images", "mask")}
    return {"images": [_png_base64(item.path) for item in made], "parameters": sent, "info": json.dumps(info)}


def a1111_samplers() -> list[dict[str, Any]]:
    """GET /sdapi/v1/samplers: the samplers by A1111 1.9's names, a schedule type apart ("DPM++ 2M"; our keys of its
    schedules its aliases)."""
    names: dict[str, list[str]] = {}
    for key, entry in load_samplers().items():
        names.setdefault(_schedule_of(str(entry["label"]))[0], []).append(key)
    return [{"name": name, "aliases": keys, "options": {}} for name, keys in names.items()]


def a1111_schedulers() -> list[dict[str, Any]]:
    """GET /sdapi/v1/schedulers: the schedule types a sampler here may be asked with."""
    return [{"name": name.lower(), "label": name, "aliases": None, "default_rho": -1, "need_inner_model": False}
            for name in (AUTOMATIC, "Uniform", *SCHEDULE_NAMES)]


def a1111_models(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GET /sdapi/v1/sd-models: the models a request can name now (`available_models`), by their ids."""
    return [{"title": m["id"], "model_name": m["id"], "hash": None, "sha256": None, "filename": m["id"],
             "config": None} for m in models if m.get("available")]
