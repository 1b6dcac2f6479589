"""Precompiled UNets: torch's ahead-of-time compilation (`torch.compile(...).aot_compile`), one graph per input
shape saved in the compile cache folder, so that a restart loads the compiled UNet instead of tracing it again.

A cached compilation (Inductor's code found on disk) still traces the whole UNet with Dynamo and rebuilds its
guards. A saved graph holds the traced program, its guards and the backend's code: loading it skips the trace
(bench/compile_restart.py measures both). The weights are inputs of the graph, not part of it, so one file serves
every checkpoint of an architecture: the file's name is a digest of the UNet's class and config, dtype, device,
input shapes, compile backend and the torch, diffusers and Python versions.

Graphs are saved only by a child compiler (GATOR_COMPILE_PROCESS=child, engine/compile_child.py), which traces a
UNet copy of its own: an inline trace shares the UNet with requests that change it for one call (tiling's padding,
FreeU, a LoRA), and a graph traced while one did would be saved wrong and outlive the process. A compiler loads a
saved graph wherever one fits. Used for the whole-UNet scope where this torch has `aot_compile`
(`precompile_supported`); other scopes compile as before, and so does a shape torch cannot precompile. A call the
graph's guards refuse (a LoRA's layers) runs eagerly.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .compiled import call_key, shape_label
from .errors import first_line

logger = logging.getLogger(__name__)

GRAPH_SUFFIX = ".unet-graph"
PRECOMPILE_BACKENDS = ("inductor", "aot_eager")  # backends whose output can be saved with the graph (aot_eager:
# AOTAutograd without code generation, for checks that need no speed)


def unet_call(unet: Any, *args: Any, **kwargs: Any) -> Any:
    """The function compiled: the UNet called as the caller called it (a graph's guards check how arguments were
    given). Module-level, so a saved graph can name it and the UNet stays an input (its weights are read at each
    call, never saved)."""
    return unet(*args, **kwargs)


def precompile_supported(backend: Any) -> bool:
    """Whether this torch can save a compiled UNet for `backend`: its experimental `aot_compile`, with the parts
    used here (older versions lack some; they compile as before)."""
    if backend not in PRECOMPILE_BACKENDS:
        return False
    try:
        import torch._dynamo.config as dynamo_config
        from torch._dynamo.aot_compile import AOTCompiledFunction
        from torch._dynamo.types import GuardFilterEntry
        from torch.compiler import load_compiled_function  # noqa: F401
    except ImportError:
        return False
    return (hasattr(dynamo_config, "enable_aot_compile") and hasattr(AOTCompiledFunction, "guard_check")
            and hasattr(AOTCompiledFunction, "disable_guard_check")
            and "derived_guard_types" in getattr(GuardFilterEntry, "__dataclass_fields__", {}))


def graph_path(folder: Path, unet: Any, key: tuple, backend: str) -> Path:
    """Where `unet`'s graph for the input shapes `key` is kept (see the module's docstring for what names it)."""
    import diffusers
    import torch

    parameter = next(unet.parameters())
    device = parameter.device
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    identity = {"class": f"{type(unet).__module__}.{type(unet).__qualname__}",
                "config": {k: v for k, v in dict(unet.config).items() if not k.startswith("_")},
                "dtype": str(parameter.dtype), "device": device_name, "key": key, "backend": backend,
                "torch_version": torch.__version__, "diffusers_version": diffusers.__version__,
                "python_version": sys.version_info[:2]}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return folder / f"{digest}{GRAPH_SUFFIX}"


def _serializable_guards(entries: list[Any]) -> list[bool]:
    """The guards a saved graph keeps: those on its inputs (shapes, dtypes, the UNet's modules and attributes).
    Guards on globals and on object identities cannot be saved; torch's own filter for `aot_compile` drops the
    first kind, this one also guards whose checks derive from the second."""
    from torch._dynamo.guards import CheckFunctionManager

    unsupported = set(CheckFunctionManager.UNSUPPORTED_SERIALIZATION_GUARD_TYPES)
    return [not (entry.is_global or entry.guard_type in unsupported
                 or unsupported.intersection(entry.derived_guard_types or ())) for entry in entries]


class PrecompiledUNet:
    """The UNet's graphs by input shape: `compiling(...)` loads the call's graph from `folder`, or (with `save`)
    compiles and saves it, and runs it; `running(...)` runs a graph made already whose guards accept the call, else
    the eager UNet. A shape with no graph to load (or, with `save`, one torch cannot precompile: a graph break,
    say) is compiled with `torch.compile`, and a restart compiles it again."""

    def __init__(self, unet: Any, folder: Path, backend: str, save: bool = False) -> None:
        import torch

        torch._dynamo.config.enable_aot_compile = True
        self.unet, self.folder, self.backend, self.save = unet, folder, backend, save
        self._precompiler = torch.compile(unet_call, backend=backend, fullgraph=True, dynamic=False,
                                          options={"guard_filter_fn": _serializable_guards})
        self._traced = torch.compile(unet, backend=backend, dynamic=False)
        self._traced_running = torch._dynamo.run(self._traced)
        self._graphs: dict[tuple, Any] = {}  # shapes with a saved (or savable) graph
        self._traced_shapes: set[tuple] = set()  # shapes compiled without one

    def compiling(self, *args: Any, **kwargs: Any) -> Any:
        key = call_key(args, kwargs)
        graph = key not in self._traced_shapes and (
            self._graphs.get(key) or self._load(key, args, kwargs)
            or (self.save and self._precompile(key, args, kwargs)))
        if not graph:
            self._traced_shapes.add(key)
            return self._traced(*args, **kwargs)
        self._graphs[key] = graph
        return graph(self.unet, *args, **kwargs)

    def running(self, *args: Any, **kwargs: Any) -> Any:
        key = call_key(args, kwargs)
        graph = self._graphs.get(key)
        if graph is not None:
            if graph.guard_check(self.unet, *args, **kwargs):
                return graph(self.unet, *args, **kwargs)
            return self.unet(*args, **kwargs)
        if key in self._traced_shapes:
            return self._traced_running(*args, **kwargs)
        return self.unet(*args, **kwargs)

    def _load(self, key: tuple, args: tuple, kwargs: dict) -> Any:
        """The saved graph for `key`, when there is one that accepts this UNet; None otherwise."""
        import torch

        path = graph_path(self.folder, self.unet, key, self.backend)
        if not path.is_file():
            return None
        try:
            with path.open("rb") as file:
                graph = torch.compiler.load_compiled_function(file)
        except Exception as err:  # a damaged file, or one torch no longer reads: compiled as without one, and
            # removed, so that the next start's child compiler saves a good one instead of it failing each start
            logger.info("The saved UNet graph %s could not be loaded (%s); compiling the UNet instead, and the file "
                        "is removed (the next start saves a new one).", path.name, first_line(err))
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        if not graph.guard_check(self.unet, *args, **kwargs):
            logger.info("The saved UNet graph %s does not fit this UNet (%s); compiling the UNet instead.", path.name,
                        _refusal(graph, (self.unet, *args), kwargs))
            return None
        logger.info("Loaded the saved UNet graph for %s (no trace needed).", shape_label(key))
        return _unchecked(graph)

    def _precompile(self, key: tuple, args: tuple, kwargs: dict) -> Any:
        """Compile `key`'s graph ahead of time and save it; None where torch cannot (a graph that cannot be saved
        is still used, and said in the log)."""
        try:
            graph = self._precompiler.aot_compile(((self.unet, *args), kwargs))
        except Exception as err:
            logger.warning("The UNet could not be precompiled for %s (%s: %s); it is compiled without a saved graph, "
                           "so a restart compiles it again.", shape_label(key), type(err).__name__,
                           (str(err).strip().splitlines() or [""])[0][:200])
            return None
        path = graph_path(self.folder, self.unet, key, self.backend)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            graph.save_compiled_function(str(path))
        except Exception as err:
            logger.warning("The compiled UNet graph could not be saved in %s (%s); a restart compiles it again.",
                           self.folder, err)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        return _unchecked(graph)


def _refusal(graph: Any, args: tuple, kwargs: dict) -> str:
    """The first guard of `graph` that refuses these arguments, as torch words it (torch's internals: "unknown"
    where they differ)."""
    try:
        info = graph._artifacts.guard_manager.check_verbose(graph.prepare_f_locals(*args, **kwargs))
        return "; ".join(info.verbose_code_parts)[:300] or "unknown"
    except Exception:
        return "unknown"


def _unchecked(graph: Any) -> Any:
    """`graph` without its own guard check on each call: `running` checks first (and runs eagerly where the guards
    refuse), `compiling` calls it with the arguments it was made or checked for."""
    graph.disable_guard_check()
    return graph

