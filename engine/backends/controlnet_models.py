"""ControlNets for the loaded diffusers pipeline: a ControlNet file loaded once (diffusers' ControlNetModel) in the
pipeline's dtype and device and kept while requests ask for it. A diffusers folder loads with `from_pretrained`;
one file (A1111's original layout, or diffusers' keys) with `from_single_file`, its config made from the loaded
UNet's (as `ControlNetModel.from_unet` makes it), so nothing is fetched. The pipeline that uses it is derived per
request with `from_pipe(pipe, controlnet=...)` (engine/backends/diffusers.py)."""
from __future__ import annotations

import logging
import tempfile
from typing import Any

from ..errors import InvalidRequest, first_line
from ..model_files import DIFFUSERS_WEIGHTS, ModelFile

logger = logging.getLogger(__name__)


class ControlNets:
    """The ControlNet loaded for one pipeline object (one at a time; a new pipeline starts with none)."""

    def __init__(self) -> None:
        self._pipe_id: int | None = None
        self._loaded: tuple[tuple[str, int, float], Any] | None = None  # (file stamp, ControlNetModel)

    def model(self, pipe: Any, file: ModelFile, model_label: str) -> Any:
        """The ControlNetModel of `file` for `pipe` (loaded on first use); InvalidRequest when it does not fit."""
        if id(pipe) != self._pipe_id:
            self._pipe_id, self._loaded = id(pipe), None
        if self._loaded is None or self._loaded[0] != file.stamp:
            self._loaded = None  # free the previous one first
            self._loaded = (file.stamp, _load(pipe, file, model_label))
        return self._loaded[1]


def _load(pipe: Any, file: ModelFile, model_label: str) -> Any:
    import torch
    from diffusers import ControlNetModel

    unet = pipe.unet
    try:
        if file.in_diffusers_folder:  # diffusion_pytorch_model[.fp16].safetensors beside its config.json
            parts = file.path.name[len(DIFFUSERS_WEIGHTS):].split(".")
            variant = parts[1] if len(parts) == 3 else None
            controlnet = ControlNetModel.from_pretrained(str(file.path.parent), variant=variant, torch_dtype=unet.dtype,
                                                         local_files_only=True)
        else:
            with tempfile.TemporaryDirectory(prefix="gator-controlnet-config-") as config:
                with torch.device("meta"):  # only the config is wanted: nothing is allocated
                    ControlNetModel.from_unet(unet, load_weights_from_unet=False).save_config(config)
                controlnet = ControlNetModel.from_single_file(str(file.path), config=config, local_files_only=True,
                                                              torch_dtype=unet.dtype)
    except Exception as err:
        logger.info("ControlNet %s did not load for %s: %s", file.path.name, model_label, err)
        raise InvalidRequest(f"The ControlNet {file.name} does not fit {model_label} ({first_line(err, 200)}); use a "
                             "ControlNet made for this model's family.") from None
    logger.info("Loaded ControlNet %s", file.path.name)
    return controlnet if controlnet.device == unet.device else controlnet.to(unet.device)
