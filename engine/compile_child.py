"""Compiling a UNet in a child process, so that tracing and code generation never share this process's GIL with
running requests (on an H100 a 2.2 s request took 34 s beside an in-process compilation of the whole UNet).

The child builds the same UNet (its class and config; weights left unset, which compiled code does not depend on)
on the same device, in the same dtype and memory layout, compiles it for the shapes asked for exactly as the
background compiler would (engine/compiled.py `compiled_functions`, `compile_shape`) and leaves the result in the
shared compile cache. The compiler's own compilation then finds it there: it still traces the UNet, but skips
generating code, the long part.

    python -m engine.compile_child < spec.json      (what `compile_in_child` runs)
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 1800.0  # a cold compilation of SDXL's whole UNet took 115-144 s on an H100; a slow CPU far longer
# GPU memory the child may take beside this process: its UNet copy and the activations of one CFG step. A card with
# less free than this many times the UNet's weights compiles in this process instead.
CHILD_MEMORY_FACTOR = 3.0


def child_spec(unet: Any, keys: list[tuple], scope: str, backend: str,
               graphs_dir: Path | None = None) -> dict[str, Any]:
    """What the child needs to build and compile `unet` as the compiler would: JSON-ready."""
    parameter = next(unet.parameters())
    return {"module": type(unet).__module__, "class": type(unet).__qualname__, "config": _plain(dict(unet.config)),
            "device": str(parameter.device), "dtype": str(parameter.dtype).replace("torch.", ""),
            "requires_grad": parameter.requires_grad, "scope": scope, "backend": backend,
            "keys": [[list(sample), list(text), dtype] for sample, text, dtype in keys],
            "graphs_dir": str(graphs_dir) if graphs_dir is not None else None}


def child_fits(unet: Any) -> str | None:
    """None when a child may compile `unet` beside this process, else the sentence why not (GPU memory)."""
    import torch

    parameter = next(unet.parameters())
    if parameter.device.type != "cuda":
        return None
    weights = sum(p.numel() * p.element_size() for p in unet.parameters())
    free, _total = torch.cuda.mem_get_info(parameter.device)
    if free < CHILD_MEMORY_FACTOR * weights:
        return (f"{free / 1024**3:.1f} GiB of GPU memory is free, under the {CHILD_MEMORY_FACTOR * weights / 1024**3:.1f}"
                f" GiB a second copy of the UNet and its activations need")
    return None


def compile_in_child(unet: Any, keys: list[tuple], scope: str, backend: Any, graphs_dir: Path | None = None,
                     timeout_s: float = CHILD_TIMEOUT_S) -> str | None:
    """Compile `unet` for `keys` in a child process, filling the compile cache; None when it did, else the sentence
    why not (the caller then compiles in this process, as without a child)."""
    if not isinstance(backend, str):
        return "the compile backend is a function of this process, which a child cannot use"
    too_big = child_fits(unet)
    if too_big:
        return too_big
    spec = json.dumps(child_spec(unet, keys, scope, backend, graphs_dir))
    try:
        child = subprocess.Popen([sys.executable, "-m", "engine.compile_child"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
                                 env=dict(os.environ))
    except OSError as err:
        return f"it could not start ({err})"
    _children.add(child)
    try:  # waiting here holds no GIL: requests run on meanwhile
        _out, errors = child.communicate(spec, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return f"it took over {timeout_s:.0f} s"
    finally:
        _children.discard(child)
    if child.returncode:
        lines = errors.strip().splitlines()
        return f"it failed ({lines[-1][:200] if lines else f'exit status {child.returncode}'})"
    return None


_children: set[subprocess.Popen] = set()  # compiling now: ended with this process (they hold GPU memory)


@atexit.register
def _end_children() -> None:
    for child in list(_children):
        child.kill()


def _plain(value: Any) -> Any:
    """A config as JSON can hold it (tuples as lists, FrozenDicts as dicts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_unet(spec: dict[str, Any]) -> Any:
    """The UNet `spec` describes, on its device with unset weights."""
    import torch
    from diffusers.configuration_utils import FrozenDict

    cls = getattr(importlib.import_module(spec["module"]), spec["class"])
    config = {k: v for k, v in spec["config"].items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = cls.from_config(config)
    unet = unet.to_empty(device=spec["device"]).to(dtype=getattr(torch, spec["dtype"])).eval()
    unet._internal_dict = FrozenDict(spec["config"])  # the whole config, "_" keys too: a saved graph's guards read it
    return unet.requires_grad_(spec["requires_grad"])  # channels_last: as `compiled_functions` makes every UNet


def main() -> None:
    """Read a spec from stdin, compile, exit 0 (any failure: its line on stderr, exit 1)."""
    from .compiled import compile_shape, compiled_functions, trace_before_requests

    spec = json.loads(sys.stdin.read())
    unet = build_unet(spec)
    trace_before_requests()
    graphs_dir = Path(spec["graphs_dir"]) if spec.get("graphs_dir") else None
    compiling, _running = compiled_functions(unet, spec["scope"], spec["backend"], graphs_dir, save_graphs=True)
    for sample, text, dtype in spec["keys"]:
        compile_shape(compiling, unet, (tuple(sample), tuple(text), dtype))
    sys.stdout.flush()
    os._exit(0)  # done: skip interpreter teardown (compiler worker threads can abort it)


if __name__ == "__main__":
    main()
