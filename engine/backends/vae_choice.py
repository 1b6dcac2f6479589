"""A VAE file in place of the checkpoint's own (A1111's "SD VAE"): loaded with diffusers'
`AutoencoderKL.from_single_file` in the loaded pipeline's own VAE shape, swapped in for a request that
names it, and the checkpoint's own VAE put back for one that does not."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest, first_line

logger = logging.getLogger(__name__)


class VaeChoice:
    """The VAE of one pipeline object: its own, or one file at a time (kept loaded while it is asked for)."""

    def __init__(self) -> None:
        self._pipe_id: int | None = None
        self._own: Any = None
        self._loaded: tuple[tuple[str, int, float], Any] | None = None  # (file stamp, AutoencoderKL)

    def apply(self, pipe: Any, path: Path | None, stamp: tuple[str, int, float] | None, model_label: str) -> None:
        """Give `pipe` the VAE in `path` (None: the checkpoint's own)."""
        if id(pipe) != self._pipe_id:
            self._pipe_id, self._own, self._loaded = id(pipe), pipe.vae, None
        if path is None:
            pipe.vae = self._own
            return
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, self._load(path, model_label))
        pipe.vae = self._loaded[1]

    def _load(self, path: Path, model_label: str) -> Any:
        from diffusers import AutoencoderKL

        own = self._own
        try:
            with tempfile.TemporaryDirectory(prefix="gator-vae-config-") as config:
                own.save_config(config)  # the loaded model's VAE shape, so no config is fetched
                vae = AutoencoderKL.from_single_file(str(path), config=config, local_files_only=True,
                                                     torch_dtype=own.dtype)
        except Exception as err:
            logger.info("VAE %s did not load for %s: %s", path.name, model_label, err)
            raise InvalidRequest(f"The VAE {path.stem} does not fit {model_label} ({first_line(err, 200)}); use a "
                                 "VAE made for this model's family, or auto.") from None
        logger.info("Loaded VAE %s", path.name)
        return vae.to(own.device)
