"""Compiled UNets: `torch.compile` + channels_last, made in the background so no request waits for it.

When a model loads (compile mode on; auto = on for CUDA GPUs), a thread compiles its UNet for the model's native
size by calling it once on zeros; requests run the eager UNet meanwhile. The pipeline's UNet is replaced by a
`ShapeRouter` that sends each call to the compiled UNet only for input shapes compiled already (and only while no
compilation runs), and to the eager one otherwise, so a new size or prompt length never puts a compilation on a
user's request path: a request at a new size runs eagerly and queues that size for the background (at most
MAX_COMPILED_SHAPES shapes per model; each is a static graph). Inductor's caches live in a folder of ours
(`compile_cache_dir`), so a restart reuses the generated code instead of building it again. The scope says what is
compiled: the whole UNet ("unet") or only its repeated transformer blocks ("blocks", engine/regional_compile.py:
much less to trace, so a cold or cached compilation is shorter, at part of the speed-up).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .compile_child import compile_in_child
from .regional_compile import RegionalUNet

logger = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "on", "off")
COMPILE_SCOPES = ("unet", "blocks")  # the whole UNet; only its repeated transformer blocks
COMPILE_PROCESSES = ("inline", "child")  # where code is generated: this process, or a child that fills the cache
# a child by default: requests beside it keep close to their speed (an inline trace holds the GIL: a 2.2 s image
# took 34 s on an H100), and only a child saves the whole-UNet graphs a restart loads (BENCHMARKS.md, runs 5 and 6)
DEFAULT_COMPILE_PROCESS = "child"
MAX_COMPILED_SHAPES = 4  # static graphs per model: the native size and the first other sizes asked for
# Graphs one compiled function may keep (torch's default is 8): the UNet's forward, or a transformer block's, is one
# function for every model and worker, so it holds each worker's sizes for each model family loaded, and per size up
# to four block shapes (SD 1.x's four levels). Past the limit torch would run new shapes eagerly for good.
GRAPHS_PER_FUNCTION = 64
GRAPHS_FOLDER = "graphs"  # under the compile cache: the whole UNet's saved graphs (engine/precompiled.py)
PROMPT_TOKENS = 77  # CLIP's context: the text-embedding length of an ordinary prompt
# Python's thread switch interval while a compilation runs (default 5 ms). Tracing holds the GIL for long
# stretches; a request running eagerly meanwhile waits up to one interval each time it needs the GIL back,
# which made a 2.6 s SDXL image take over two minutes on an H100. At 0.1 ms a GIL-bound thread slowed a tiny
# CPU generation 3x instead of 32x (see the module's tests).
COMPILE_SWITCH_INTERVAL_S = 0.0001


Size = tuple[int, int]  # (width, height) in pixels


def parse_compile_sizes(text: str) -> tuple[Size, ...]:
    """GATOR_COMPILE_SIZES ("1024x1024,832x1216") as (width, height) pairs; ValueError with a sentence for anything
    else (sizes are multiples of 8 pixels; at most MAX_COMPILED_SHAPES of them)."""
    from .params import HEIGHT, WIDTH  # the image sizes a request may ask for: the same rule

    sizes = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        width, _, height = item.partition("x")
        if not (width.isdigit() and height.isdigit() and WIDTH.problem(int(width)) is None
                and HEIGHT.problem(int(height)) is None):
            raise ValueError(f"GATOR_COMPILE_SIZES lists sizes as WIDTHxHEIGHT separated by commas, each a multiple of "
                             f"{WIDTH.multiple_of} pixels from {WIDTH.minimum} to {WIDTH.maximum} (got {item!r}).")
        sizes.append((int(width), int(height)))
    if len(sizes) > MAX_COMPILED_SHAPES:
        raise ValueError(f"GATOR_COMPILE_SIZES may list at most {MAX_COMPILED_SHAPES} sizes (got {len(sizes)}).")
    return tuple(dict.fromkeys(sizes))


@dataclass(frozen=True)
class CompileOptions:
    """How local UNets are compiled: GATOR_COMPILE (mode), GATOR_COMPILE_SCOPE (scope), the cache folder,
    GATOR_COMPILE_SIZES (sizes compiled at load; none: the model's native size) and GATOR_COMPILE_PROCESS (process:
    "child" generates the code in a child process, engine/compile_child.py)."""

    mode: str = "off"
    scope: str = "unet"
    cache_dir: Path | None = None
    sizes: tuple[Size, ...] = ()
    process: str = DEFAULT_COMPILE_PROCESS


def compile_wanted(mode: str, device: str) -> bool:
    """Whether the UNet should be compiled: "on" always, "auto" on CUDA GPUs, "off" never."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"The compile mode must be one of {', '.join(COMPILE_MODES)} (got {mode!r}).")
    return mode == "on" or (mode == "auto" and device == "cuda")


def use_compile_cache(folder: Path) -> None:
    """Keep Inductor's generated code and FX graph cache in `folder` (unless the user's TORCHINDUCTOR_CACHE_DIR names
    another), so that a restart finds them. Torch writes its default (a folder under /tmp) into the environment the
    first time it looks, which importing diffusers already does: that value is replaced, not kept."""
    folder.mkdir(parents=True, exist_ok=True)
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == _torch_default_cache_dir():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    try:
        import torch._inductor.config as inductor_config  # read from the environment once, at its import

        inductor_config.fx_graph_cache = True
    except ImportError:  # no Inductor in this torch: nothing is compiled with it either
        pass


def _torch_default_cache_dir() -> str | None:
    """Where Inductor puts its cache when nobody chose a folder (None where this torch does not say)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return None
    return os.path.abspath(default_cache_dir())


@dataclass
class CompileState:
    """What the status tab shows: "off", "waiting", "compiling", "ready" or "failed", with the shapes done."""

    status: str = "off"
    model: str | None = None
    shapes: list[str] = field(default_factory=list)
    compiling: str | None = None
    started: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""
    inline_reason: str = ""  # why the last shape was compiled in this process when a child was asked for

    def describe(self) -> str:
        """One line: "compiling 1024x1024 (42 s so far); ready: 768x768"."""
        parts = []
        if self.compiling:
            parts.append(f"compiling {self.compiling} ({time.monotonic() - (self.started or 0):.0f} s so far)")
        if self.shapes:
            parts.append("ready: " + ", ".join(f"{s} ({self.seconds.get(s, 0):.0f} s)" for s in self.shapes))
        if self.error:
            parts.append(self.error)
        return "; ".join(parts) or self.status


def shape_key(sample: Any, encoder_hidden_states: Any) -> tuple:
    """What a compiled graph is specialised on: the latents' and the text embeddings' shapes and dtype."""
    return tuple(sample.shape), tuple(encoder_hidden_states.shape), str(sample.dtype)


def call_key(args: tuple, kwargs: dict) -> tuple:
    """`shape_key` of a UNet call, its latents and text embeddings given by position or by keyword."""
    sample = args[0] if args else kwargs["sample"]
    text = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
    return shape_key(sample, text)


def shape_label(key: tuple) -> str:
    """"1024x1024" for a key of latents [2, 4, 128, 128] (the latent factor 8)."""
    (_, _, height, width), _, _ = key
    return f"{width * 8}x{height * 8}"


def has_hooks(unet: Any) -> bool:
    """Whether forward hooks are on `unet` itself (CFG rescale's, engine/backends/guidance_rescale.py) or on every
    module: compiled graphs ignore hooks added after they were made (torch skips guards on hooks), so such a call
    runs eagerly."""
    from torch.nn.modules import module

    return bool(unet._forward_hooks or unet._forward_pre_hooks or module._global_forward_hooks
                or module._global_forward_pre_hooks)


class ShapeRouter:
    """Stands in for a pipeline's UNet: each call goes to the compiled graphs when its input shapes are compiled
    and no compilation runs (`run_compiled`: graphs made already, never a compilation), else to the eager UNet.
    Everything else (config, dtype, device, modules) is the eager UNet's."""

    def __init__(self, eager: Any, run_compiled: Any, ready: Callable[[tuple], bool],
                 on_new_shape: Callable[[tuple], None]) -> None:
        self.__dict__.update(_eager=eager, _run_compiled=run_compiled, _ready=ready, _on_new_shape=on_new_shape)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The UNet's call, passed on exactly as made (a graph's guards check how arguments were given)."""
        sample = args[0] if args else kwargs["sample"]
        key = call_key(args, kwargs)
        # the graphs of a shape made already; a call they were not made for (a LoRA's layers...) runs eagerly and
        # never recompiles, and so does a call with hooks on the UNet (graphs ignore them)
        if self._ready(key) and not has_hooks(self._eager):
            if args and not sample.is_contiguous():  # the graph was made for contiguous latents (guards on strides)
                args = (sample.contiguous(), *args[1:])
            elif not args and not sample.is_contiguous():
                kwargs["sample"] = sample.contiguous()
            return self._run_compiled(*args, **kwargs)
        self._on_new_shape(key)
        return self._eager(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._eager, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._eager, name, value)


class UNetCompiler:
    """Compiles the UNet of each loaded pipeline in a background thread (see the module's docstring)."""

    def __init__(self, options: CompileOptions, device: str, backend: Any = "inductor") -> None:
        if options.scope not in COMPILE_SCOPES:
            raise ValueError(f"The compile scope must be one of {', '.join(COMPILE_SCOPES)} (got {options.scope!r}).")
        if options.process not in COMPILE_PROCESSES:
            raise ValueError(f"The compile process must be one of {', '.join(COMPILE_PROCESSES)} "
                             f"(got {options.process!r}).")
        self.process = options.process
        self.wanted = compile_wanted(options.mode, device)
        self.mode, self.scope, self.device, self.backend = options.mode, options.scope, device, backend
        self.sizes = options.sizes  # compiled when a model loads; none given: the model's native size
        cache_dir = options.cache_dir
        # saved graphs only where a child traces its own UNet copy: an inline trace shares the UNet with requests
        # that change it for one call (tiling's padding, FreeU, a LoRA), and a graph saved from that would outlive it
        self.graphs_dir = cache_dir / GRAPHS_FOLDER if cache_dir is not None and self.process == "child" else None
        self.state = CompileState(status="waiting" if self.wanted else "off")
        self._lock = threading.Lock()
        self._queue: list[tuple] = []
        self._ready: set[tuple] = set()
        self._busy = False
        self._generation = 0  # bumped per model: a thread of an older model stops
        self._compiled: Any = None
        self._eager: Any = None
        if self.wanted and cache_dir is not None:
            use_compile_cache(cache_dir)
        if self.wanted:  # made when the worker is, before any request of any worker runs
            trace_before_requests()

    def attach(self, pipe: Any, model: str, native_size: int) -> None:
        """Route `pipe`'s UNet through a ShapeRouter and start compiling it, with CFG, for the sizes asked for
        (`sizes`) or else `native_size`."""
        if not self.wanted or getattr(pipe, "unet", None) is None or isinstance(pipe.unet, ShapeRouter):
            return
        eager = pipe.unet
        try:
            compiling, running = compiled_functions(eager, self.scope, self.backend, self.graphs_dir)
        except Exception as err:  # no compiler here: eager, with a sentence on the status tab
            self._failed(model, err)
            return
        with self._lock:  # a thread still compiling the previous model's UNet finishes unheeded
            self._generation += 1
            self._eager, self._compiled = eager, compiling
            self._queue, self._ready, self._busy = [], set(), False
            self.state = CompileState(status="waiting", model=model)
        pipe.unet = ShapeRouter(eager, running, self._is_ready, self.request)
        for width, height in self.sizes or ((native_size, native_size),):
            self.request(((2, eager.config.in_channels, height // 8, width // 8),
                          (2, PROMPT_TOKENS, eager.config.cross_attention_dim), str(eager.dtype)))

    def _is_ready(self, key: tuple) -> bool:
        return not self._busy and key in self._ready

    def request(self, key: tuple) -> None:
        """Queue `key`'s shapes for compiling (ignored when compiled, queued, or the per-model limit is reached)."""
        with self._lock:
            if key in self._ready or key in self._queue or len(self._ready) + len(self._queue) >= MAX_COMPILED_SHAPES:
                return
            if self.state.status == "failed":
                return
            self._queue.append(key)
            start = not self._busy
            self._busy = True
            generation = self._generation
        if start:
            threading.Thread(target=self._work, args=(generation,), name="unet-compile", daemon=True).start()

    def _work(self, generation: int) -> None:
        while True:
            with self._lock:
                if generation != self._generation or not self._queue:
                    self._busy = False if generation == self._generation else self._busy
                    if generation == self._generation:
                        self.state.compiling = None
                        self.state.status = "ready" if self._ready else self.state.status
                    return
                key = self._queue[0]
                compiled, eager = self._compiled, self._eager
                self.state.status, self.state.compiling, self.state.started = "compiling", shape_label(key), \
                    time.monotonic()
            started = time.perf_counter()
            why_not = None
            if self.process == "child" and not graph_saved(self.graphs_dir, eager, key, self.scope, self.backend):
                # the code made there, without this process's GIL; then found in the cache (or its graph loaded)
                why_not = compile_in_child(eager, [key], self.scope, self.backend, self.graphs_dir)
                if why_not:
                    logger.info("Compiling the UNet for %s in this process: a child could not (%s).",
                                shape_label(key), why_not)
            with self._lock:  # this shape's: a graph loaded after a shape compiled here clears it
                self.state.inline_reason = why_not or ""
            interval = sys.getswitchinterval()
            sys.setswitchinterval(COMPILE_SWITCH_INTERVAL_S)  # requests running meanwhile get the GIL back soon
            try:
                compile_shape(compiled, eager, key)
            except Exception as err:
                logger.warning("Compiling the UNet for %s failed; it runs eagerly: %s", shape_label(key), err)
                with self._lock:
                    if generation == self._generation:
                        self._queue.clear()
                        self._busy = False
                        self.state.compiling = None
                        self.state.status, self.state.error = "failed", _sentence(err)
                return
            finally:
                sys.setswitchinterval(interval)
            seconds = time.perf_counter() - started
            logger.info("Compiled the UNet of %s for %s in %.1f s", self.state.model, shape_label(key), seconds)
            with self._lock:
                if generation == self._generation:
                    self._queue.pop(0)
                    self._ready.add(key)
                    self.state.shapes.append(shape_label(key))
                    self.state.seconds[shape_label(key)] = seconds

    def _failed(self, model: str, err: Exception) -> None:
        logger.warning("torch.compile is unavailable; the UNet runs eagerly: %s", err)
        self.state = CompileState(status="failed", model=model, error=_sentence(err))

    def snapshot(self) -> dict[str, Any]:
        """The status tab's view: mode, status, model and a one-line description."""
        with self._lock:
            return {"mode": self.mode, "scope": self.scope, "status": self.state.status, "model": self.state.model,
                    "process": "inline" if self.state.inline_reason else self.process,  # the one used last
                    "inline_reason": self.state.inline_reason,
                    "shapes": list(self.state.shapes), "summary": self.state.describe()}


def compiled_functions(eager: Any, scope: str, backend: Any, graphs_dir: Path | None = None,
                       save_graphs: bool = False) -> tuple[Callable, Callable]:
    """(compiling, running) for `eager` (made channels_last): `compiling` compiles what it is called with (the
    background thread), `running` only runs graphs made already (a request: it never compiles, whatever else runs).
    With `graphs_dir`, the whole UNet's graphs saved there are loaded instead of traced where this torch can
    (engine/precompiled.py), and with `save_graphs` those it compiles are saved there (a child compiler's own
    UNet copy). Raises where torch.compile cannot be used."""
    import torch

    from .precompiled import PrecompiledUNet, precompile_supported

    if scope == "blocks":
        regional = RegionalUNet(eager, backend)
        compiling, running = regional.compiling, regional.running
    elif graphs_dir is not None and precompile_supported(backend):
        precompiled = PrecompiledUNet(eager, graphs_dir, backend, save=save_graphs)
        compiling, running = precompiled.compiling, precompiled.running
    else:
        compiling = torch.compile(eager, backend=backend, dynamic=False)
        running = torch._dynamo.run(compiling)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, GRAPHS_PER_FUNCTION)
    eager.to(memory_format=torch.channels_last)
    return compiling, running


def graph_saved(graphs_dir: Path | None, eager: Any, key: tuple, scope: str, backend: Any) -> bool:
    """Whether `key`'s whole-UNet graph is saved in `graphs_dir` already (a restart: no child needed to load it)."""
    from .precompiled import graph_path, precompile_supported

    return bool(graphs_dir is not None and scope == "unet" and precompile_supported(backend)
                and graph_path(graphs_dir, eager, key, backend).is_file())


def compile_shape(compiling: Callable, eager: Any, key: tuple) -> None:
    """Compile `key`'s shapes: `compiling` called on zeros as diffusers' pipelines call a UNet (no_grad, keywords),
    so the graph's guards match their calls."""
    import torch

    sample, timestep, text, added = zeros_for(eager, key)
    with torch.no_grad():
        compiling(sample, timestep, encoder_hidden_states=text, timestep_cond=None, cross_attention_kwargs=None,
                  added_cond_kwargs=added, return_dict=False)
    if eager.device.type == "cuda":
        torch.cuda.synchronize()


def trace_before_requests() -> None:
    """Do now, before requests run beside a compiler thread, the one `torch.fx.symbolic_trace` Inductor makes per
    process (a placeholder module for its loop bodies, made at its first code generation). While fx traces it swaps
    `nn.Module.__call__` for every thread, and a request's eager UNet called meanwhile failed with "module is not
    installed as a submodule" (seen on an H100: a request during a compilation, and a new size's request after a
    restart whose first size came from the cache, so the first code generation ran beside it)."""
    try:
        from torch._inductor.loop_body import InterpreterShim

        InterpreterShim._dummy_gm()  # cached by torch: made once per process
    except (ImportError, AttributeError):  # another torch: no such placeholder to make ahead
        logger.debug("This torch has no Inductor loop-body placeholder to trace ahead.")


def zeros_for(unet: Any, key: tuple) -> tuple[Any, Any, Any, dict | None]:
    """UNet inputs of `key`'s shapes: zero latents, a timestep, zero text embeddings, SDXL's added inputs."""
    import torch

    sample_shape, text_shape, _ = key
    options = dict(device=unet.device, dtype=unet.dtype)
    sample = torch.zeros(sample_shape, **options)
    text = torch.zeros(text_shape, **options)
    timestep = torch.tensor(500.0, device=unet.device)
    config = unet.config
    added = None
    if config.get("addition_embed_type") == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        added = {"text_embeds": torch.zeros(sample_shape[0], pooled, **options),
                 "time_ids": torch.zeros(sample_shape[0], 6, **options)}
    return sample, timestep, text, added


def _sentence(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return f"Compiling failed ({type(err).__name__}: {first}); the UNet runs eagerly."
