"""Every result is written to disk, with its parameters, before anyone sees it."""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from . import params as P
from .errors import OutputError

logger = logging.getLogger(__name__)

JSON_CHUNK = "gator"


def day_folder(output_dir: Path) -> Path:
    """outputs/YYYY-MM-DD/, created if needed."""
    return Path(output_dir) / datetime.now().strftime("%Y-%m-%d")


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "image"


A1111_ORDER = ("num_inference_steps", "sampler", "guidance_scale", "seed", "size", "model", "backend")


def a1111_parameters(params: dict[str, Any]) -> str:
    """The A1111 `parameters` text: prompt, `Negative prompt:` line, then `Key: value` pairs (keys from
    engine/params.py)."""
    lines = [params.get("prompt", "")]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    pairs = []
    for name in A1111_ORDER:
        if name == "size":
            pairs.append(("Size", f"{params.get('width')}x{params.get('height')}"))
        else:
            pairs.append((P.BY_NAME[name].a1111_key, params.get(name)))
    lines.append(", ".join(f"{k}: {v}" for k, v in pairs if v is not None))
    return "\n".join(lines)


def save_image(image: Image.Image, params: dict[str, Any], output_dir: Path) -> Path:
    """Write `image` as PNG with `parameters` (A1111) and `gator` (JSON) text chunks; return its path.

    Raises OutputError with a clear sentence when the folder cannot be written.
    """
    folder = day_folder(output_dir)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(params))
    info.add_text(JSON_CHUNK, json.dumps(params, default=str, ensure_ascii=False))
    stem = f"{time.strftime('%H%M%S')}-{params.get('seed', 0)}-{_slug(params.get('prompt', ''))}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.png"
        n = 1
        while path.exists():
            path = folder / f"{stem}-{n}.png"
            n += 1
        tmp = path.with_suffix(".png.part")
        image.save(tmp, format="PNG", pnginfo=info)
        tmp.replace(path)
    except OSError as err:
        raise OutputError(f"Could not save the image to {folder}: {err.strerror or err}. "
                          "Check that the output folder (GATOR_OUTPUT_DIR) exists, is writable and has free space.") from err
    logger.info("Saved %s", path)
    return path


_PAIR = re.compile(r"\s*([A-Za-z][A-Za-z0-9 ]*?):\s*([^,]+)")


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Parse an A1111 `parameters` text back into prompt, negative_prompt and the settings line."""
    lines = text.strip("\n").split("\n")
    settings_line = lines[-1] if len(lines) > 1 and _PAIR.match(lines[-1]) and "Steps:" in lines[-1] else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {"prompt": "\n".join(prompt_lines), "negative_prompt": "\n".join(negative_lines)}
    keys = P.a1111_keys()
    casts = {"int": int, "seed": int, "pixels": int, "float": float}
    for key, value in _PAIR.findall(settings_line):
        key, value = key.strip(), value.strip()
        if key == "Size":
            w, _, h = value.partition("x")
            result["width"], result["height"] = int(w), int(h)
        elif key in keys:
            param = P.BY_NAME[keys[key]]
            result[param.name] = casts.get(param.kind, str)(value)
    return result


def read_parameters(path: str | Path) -> dict[str, Any]:
    """Generation parameters saved in a PNG: the JSON chunk when present, else the A1111 text.

    Returns {} for an image with no parameters.
    """
    with Image.open(path) as img:
        text = dict(getattr(img, "text", {}) or {})
    if JSON_CHUNK in text:
        try:
            saved = json.loads(text[JSON_CHUNK])
            return {P.RESULT_ALIASES.get(k, k): v for k, v in saved.items()}
        except json.JSONDecodeError:
            logger.warning("Unreadable %s chunk in %s; using the A1111 text.", JSON_CHUNK, path)
    if "parameters" in text:
        return parse_a1111_parameters(text["parameters"])
    return {}
