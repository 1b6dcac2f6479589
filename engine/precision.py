"""Which floating-point type local pipelines run in: a rule per device, measured, overridable by GATOR_DTYPE.

On an H100 with full-size SDXL at 1024 px (bench/gpu_sdxl.py), bfloat16 was no faster than float16 and the run
to run spread was wide, so `auto` picks float16 on GPUs (the SDXL VAE still decodes in float32 where its config
asks for the upcast, as diffusers does) and float32 on the CPU, where half precision is slow or unsupported.
"""
from __future__ import annotations

DTYPES = ("auto", "float16", "bfloat16", "float32")
AUTO_BY_DEVICE = {"cuda": "float16", "mps": "float16", "cpu": "float32"}


def dtype_problem(setting: str) -> str | None:
    """A sentence when `setting` is not a dtype this app knows."""
    if setting not in DTYPES:
        return f"GATOR_DTYPE must be one of {', '.join(DTYPES)} (got {setting!r})."
    return None


def chosen_dtype(setting: str, device: str) -> tuple[str, str]:
    """(dtype name, why) for `device`: the setting when it names one, else the device's rule."""
    if setting != "auto":
        return setting, "set by GATOR_DTYPE"
    return AUTO_BY_DEVICE.get(device, "float32"), f"auto for {device}"
