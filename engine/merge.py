"""A1111's Checkpoint merger: two checkpoints (three for add difference) merged tensor by tensor into a new
single-file checkpoint.

Weighted sum is A × (1 − M) + B × M; add difference is A + (B − C) × M. Tensors are read one at a time (safetensors)
and computed in float32, then stored in A's dtype (or float16). A key only A has is kept as it is; one of another
shape in B or C (another family, an inpainting UNet's input) makes the merge a sentence before anything is written.
The new file carries A1111's `sd_merge_recipe` in its metadata, is written beside the models under a name of its own
(never over a file), and appears in the model list like any checkpoint of yours.
"""
from __future__ import annotations

import json
import logging
import os
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from .errors import GenerationCancelled, InvalidRequest, OutputError, first_line, os_reason

logger = logging.getLogger(__name__)

WEIGHTED_SUM, ADD_DIFFERENCE = "weighted_sum", "add_difference"
METHODS = (WEIGHTED_SUM, ADD_DIFFERENCE)
METHOD_LABELS = {WEIGHTED_SUM: "Weighted sum", ADD_DIFFERENCE: "Add difference"}  # A1111's words
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


def merged_file(primary: Path, secondary: Path, multiplier: float, target: Path, *, method: str = WEIGHTED_SUM,
                tertiary: Path | None = None, half: bool = False,
                stopped: Callable[[], bool] = lambda: False) -> Path:
    """Merge the checkpoints into `target` (a .safetensors path that must not exist yet); its path. InvalidRequest with
    a sentence for inputs it cannot merge, OutputError when the file cannot be written, GenerationCancelled once
    `stopped()` is true (nothing is left behind)."""
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    if method not in METHODS:
        raise InvalidRequest(f"The merge method must be one of {', '.join(METHODS)} (got {method!r}).")
    if method == ADD_DIFFERENCE and tertiary is None:
        raise InvalidRequest("Add difference needs a third checkpoint (C): A + (B − C) × M.")
    if target.exists():
        raise InvalidRequest(f"A file named {target.name} is already there: choose another name.")
    sources = [primary, secondary, *([tertiary] if method == ADD_DIFFERENCE and tertiary is not None else [])]
    merged: dict[str, torch.Tensor] = {}
    m = float(multiplier)
    with ExitStack() as files:
        opened = [files.enter_context(safe_open(str(path), framework="pt")) for path in sources]
        a, others = opened[0], opened[1:]
        keys = [set(f.keys()) for f in others]
        for key in a.keys():
            if stopped():
                raise GenerationCancelled("The merge stopped.")
            first = a.get_tensor(key)
            if not first.is_floating_point() or any(key not in have for have in keys):
                merged[key] = first.half() if half and first.is_floating_point() else first
                continue
            rest = [f.get_tensor(key) for f in others]
            for path, tensor in zip(sources[1:], rest):
                if tensor.shape != first.shape:
                    raise InvalidRequest(f"{primary.name} and {path.name} cannot be merged: {key} is "
                                         f"{tuple(first.shape)} in one and {tuple(tensor.shape)} in the other "
                                         "(another model family, or an inpainting model).")
            base = first.float()
            value = base * (1 - m) + rest[0].float() * m if method == WEIGHTED_SUM else \
                base + (rest[0].float() - rest[1].float()) * m
            merged[key] = value.to(torch.float16 if half else first.dtype)
    recipe = {"type": "webui", "primary_model_name": primary.stem, "secondary_model_name": secondary.stem,
              "tertiary_model_name": tertiary.stem if tertiary is not None and method == ADD_DIFFERENCE else None,
              "interp_method": METHOD_LABELS[method], "multiplier": m, "save_as_half": bool(half)}
    partial = target.with_name(f".{target.name}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(merged, str(partial), metadata={"format": "pt", "sd_merge_recipe": json.dumps(recipe)})
        os.link(partial, target)  # never over a file that appeared meanwhile
    except FileExistsError:
        raise InvalidRequest(f"A file named {target.name} is already there: choose another name.") from None
    except (OSError, SafetensorError) as err:  # safetensors reports a full disk as its own error
        logger.error("Could not write the merged checkpoint %s: %s", target, err)
        reason = os_reason(err) if isinstance(err, OSError) else first_line(err, 120)
        raise OutputError(f"The merged checkpoint could not be written ({reason}).") from err
    finally:
        partial.unlink(missing_ok=True)
    logger.info("Merged %s into %s", ", ".join(path.name for path in sources), target)
    return target


def merge_name_problem(name: object) -> str | None:
    """A sentence when `name` cannot be the merged checkpoint's file name; None when it can."""
    if not isinstance(name, str) or not NAME.fullmatch(name.strip()):
        return ("The merged checkpoint needs a name of 1 to 100 letters, digits, spaces, dots, dashes or underscores, "
                "beginning with a letter or digit.")
    return None
