"""ControlNet's control maps: the control image fitted to the output size and turned into what the ControlNet
reads (its preprocessor, A1111's "module"), the same for every backend.

The preprocessors here need no model: `canny` (OpenCV's Canny edges, white on black, as sd-webui-controlnet makes
them) and `lineart_standard` (sd-webui-controlnet's "lineart_standard (from white bg & black line)": the dark lines
of a drawing, white on black, from a Gaussian blur's difference); `none` passes a ready map through.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import params as P
from .file_hashes import without_hash
from .input_images import fit

if TYPE_CHECKING:
    from .request import GenerationRequest

logger = logging.getLogger(__name__)

NONE, CANNY, LINEART_STANDARD = "none", "canny", "lineart_standard"
MODULES = (NONE, CANNY, LINEART_STANDARD)  # sd-webui-controlnet's names (what its PNG text says)
LINEART_SIGMA = 6.0  # sd-webui-controlnet's lineart_standard: the blur, and the weakest difference counted
LINEART_FLOOR = 8


def preprocess(image: Image.Image, module: str, low: int = P.CANNY_LOW.default,
               high: int = P.CANNY_HIGH.default) -> Image.Image:
    """`image` as the control map `module` makes of it (RGB, the same size)."""
    if module == NONE:
        return image.convert("RGB")
    import cv2  # only the preprocessors need OpenCV
    pixels = np.asarray(image.convert("RGB"))
    if module == CANNY:
        edges = cv2.Canny(pixels, int(low), int(high))
    elif module == LINEART_STANDARD:
        x = pixels.astype(np.float32)
        darker = np.min(cv2.GaussianBlur(x, (0, 0), LINEART_SIGMA) - x, axis=2).clip(0, 255)
        strong = darker[darker > LINEART_FLOOR]
        darker /= max(16.0, float(np.median(strong)) if strong.size else 0.0)
        edges = (darker * 127).clip(0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown preprocessor {module!r}")
    return Image.fromarray(edges, "L").convert("RGB")


def control_map(req: "GenerationRequest") -> Image.Image | None:
    """The control map of a validated request at its width x height (None without a ControlNet): the control image
    fitted with the request's resize mode, then preprocessed."""
    if req.control_image is None:
        return None
    fitted = fit(req.control_image, req.width, req.height, req.resize_mode)
    made = preprocess(fitted, req.controlnet_module, req.canny_low, req.canny_high)
    logger.debug("Control map %s at %dx%d", req.controlnet_module, made.width, made.height)
    return made


def controlnet_problems(req: "GenerationRequest") -> list[str]:
    """Sentences for the ControlNet values of a request (none when it has no ControlNet and no control image)."""
    name = req.controlnet
    used = isinstance(name, str) and name.strip().lower() not in ("", NONE)
    if name is not None and not isinstance(name, str):
        return ["The ControlNet must be a ControlNet's name (or none)."]
    if not used:
        return ["A control image needs a ControlNet model: choose one, or leave the control image out."] \
            if req.control_image is not None else []
    if req.control_image is None:
        return [f"The ControlNet {name.strip()} needs a control image: give the picture whose edges or lines should "
                "guide the new one."]
    if req.controlnet_module not in MODULES:
        return [f"Preprocessor must be one of {', '.join(MODULES)} (got {req.controlnet_module!r})."]
    checked = [(P.CONTROLNET_WEIGHT, req.controlnet_weight), (P.CONTROLNET_START, req.controlnet_start),
               (P.CONTROLNET_END, req.controlnet_end)]
    if req.controlnet_module == CANNY:
        checked += [(P.CANNY_LOW, req.canny_low), (P.CANNY_HIGH, req.canny_high)]
    problems = [problem for param, value in checked if (problem := param.problem(value))]
    if not problems and float(req.controlnet_start) >= float(req.controlnet_end):
        problems.append(f"Guidance start ({float(req.controlnet_start):g}) must be before guidance end "
                        f"({float(req.controlnet_end):g}): the ControlNet steers between the two.")
    return problems


def a1111_entry(params: dict) -> str | None:
    """sd-webui-controlnet's PNG text of the unit in `params` (None without one): `Module: canny, Model: name,
    Weight: 1, ...`, which `read_a1111_entry` reads back."""
    if not params.get(P.CONTROLNET.name):
        return None
    module = params.get(P.CONTROLNET_MODULE.name) or NONE
    pairs = [(P.CONTROLNET_MODULE, module), (P.CONTROLNET, params[P.CONTROLNET.name]),
             (P.CONTROLNET_WEIGHT, params.get(P.CONTROLNET_WEIGHT.name))]
    extra = []
    if module == CANNY:
        extra = [(P.CANNY_LOW.a1111_key, params.get(P.CANNY_LOW.name)),
                  (P.CANNY_HIGH.a1111_key, params.get(P.CANNY_HIGH.name))]
    pairs_text = [f"{param.a1111_key}: {_text(value)}" for param, value in pairs]
    pairs_text += [f"{key}: {_text(value)}" for key, value in extra if value is not None]
    for param in (P.CONTROLNET_START, P.CONTROLNET_END):
        pairs_text.append(f"{param.a1111_key}: {_text(params.get(param.name))}")
    pairs_text += ["Pixel Perfect: True", "Control Mode: Balanced"]  # the map is made at the output's size
    return ", ".join(pairs_text)


def read_a1111_entry(pairs: list[tuple[str, str]]) -> dict:
    """The unit's values from the `pairs` (key, value) of a `ControlNet 0` entry's text (ours or A1111's: a model's
    " [hash]" is dropped)."""
    keys = P.a1111_keys(P.CONTROLNET_PARAMS)
    out: dict = {}
    for key, value in pairs:
        name = keys.get(key.strip())
        if name is None:
            continue
        param = P.BY_NAME[name]
        value = value.strip()
        if name == P.CONTROLNET.name:
            value = without_hash(value)
        try:
            out[name] = param.from_text(value)
        except ValueError:
            logger.info("Unreadable %s in a ControlNet entry: %r", key, value)
    return out


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
