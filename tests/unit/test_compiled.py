"""Compiled UNets (engine/compiled.py) on the CPU, with torch.compile's "eager" backend (Dynamo's tracing without
code generation, so it runs in seconds): compiled in a background thread while calls run eagerly, then used for
the shapes it was made for and only those (a new size runs eagerly and is compiled behind it), the same pictures
as eager, and a sentence with eager generation where torch.compile cannot be used."""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.compiled import (COMPILE_SCOPES, MAX_COMPILED_SHAPES, CompileOptions, ShapeRouter, UNetCompiler,
                             compile_wanted, parse_compile_sizes)
from engine.config import Settings
from engine.precision import chosen_dtype
from engine.precompiled import GRAPH_SUFFIX, precompile_supported
from engine.regional_compile import repeated_blocks


def tiny_pipe(tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


GRAPH_CALLS = {"compiled": 0}
GRAPHS_MADE = {"count": 0}


def counting_backend(graph, example_inputs):
    """A torch.compile backend that runs the captured graph as it is and counts the test's own runs of it (a call
    that missed the graph and ran eagerly instead is not counted, nor the compiler thread's run of a new graph) and
    the graphs it was given."""
    GRAPHS_MADE["count"] += 1

    def run(*args):
        if threading.current_thread() is threading.main_thread():
            GRAPH_CALLS["compiled"] += 1
        return graph.forward(*args)
    return run


def wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def draw(pipe, size: int = 64):
    return np.asarray(pipe("a fox", num_inference_steps=2, width=size, height=size, guidance_scale=5.0,
                           generator=torch.Generator("cpu").manual_seed(3)).images[0])


def unet_inputs(unet, size: int) -> tuple:
    """A CFG batch of zero latents, a timestep and zero text embeddings for `unet` at `size` pixels."""
    return (torch.zeros(2, unet.config.in_channels, size // 8, size // 8), torch.tensor(500.0),
            torch.zeros(2, 77, unet.config.cross_attention_dim))


def test_modes_and_their_rule():
    assert compile_wanted("auto", "cuda") and not compile_wanted("auto", "cpu") and compile_wanted("on", "cpu")
    assert not compile_wanted("off", "cuda")
    with pytest.raises(ValueError, match="auto, on, off"):
        compile_wanted("fast", "cuda")
    with pytest.raises(ValueError, match="GATOR_COMPILE must be one of auto, on, off"):
        Settings.from_env(compile_mode="fast")
    with pytest.raises(ValueError, match="GATOR_COMPILE_SCOPE must be one of unet, blocks"):
        Settings.from_env(compile_scope="layers")
    assert Settings.from_env().compile_options.scope == "unet"
    with pytest.raises(ValueError, match="GATOR_DTYPE must be one of"):
        Settings.from_env(dtype="float8")
    assert chosen_dtype("auto", "cuda") == ("float16", "auto for cuda") and chosen_dtype("auto", "cpu")[0] == "float32"
    assert chosen_dtype("bfloat16", "cuda") == ("bfloat16", "set by GATOR_DTYPE")


@pytest.mark.parametrize("scope", COMPILE_SCOPES)
def test_compiled_in_the_background_used_for_its_shapes_only(tiny_model_dir, tmp_path, scope):
    """Scope "unet": one graph run per step; "blocks": one per transformer block and step, the blocks sharing
    their class's graphs (one per hidden size), and only in calls routed to the compiled UNet."""
    pipe = tiny_pipe(tiny_model_dir)
    eager = pipe.unet
    per_step = 1 if scope == "unet" else len(repeated_blocks(eager))
    before = draw(pipe)
    GRAPHS_MADE["count"] = 0
    compiler = UNetCompiler(CompileOptions("on", process="inline", scope=scope, cache_dir=tmp_path / "cache"), "cpu",
                            backend=counting_backend)
    compiler.attach(pipe, "tiny", native_size=64)
    assert isinstance(pipe.unet, ShapeRouter) and pipe.unet.config.in_channels == eager.config.in_channels
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    assert compiler.snapshot()["shapes"] == ["64x64"] and "ready: 64x64" in compiler.snapshot()["summary"]

    calls = GRAPH_CALLS
    calls["compiled"] = 0
    assert np.abs(draw(pipe).astype(int) - before).max() <= 2  # what eager drew (channels_last: rounding apart)
    assert calls["compiled"] == 2 * per_step  # both steps went through it
    assert GRAPHS_MADE["count"] == (1 if scope == "unet" else 2)  # the tiny UNet's blocks: two hidden sizes
    calls["compiled"] = 0
    eager(*unet_inputs(eager, 64))  # the UNet itself, called outside the router: its blocks run eagerly
    assert calls["compiled"] == 0
    from engine.backends.diffusers import derived

    img2img = derived(pipe, "AutoPipelineForImage2Image")  # the image-to-image pipeline over the same modules
    img2img("a fox", image=Image.fromarray(before), strength=1.0, num_inference_steps=2, guidance_scale=5.0)
    assert calls["compiled"] >= 2 * per_step  # its latents come from the VAE in another memory layout: made contiguous

    calls["compiled"] = 0
    draw(pipe, 128)  # a size not compiled: eager now, compiled behind it
    assert calls["compiled"] == 0
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready" and "128x128" in compiler.snapshot()["shapes"])
    calls["compiled"] = 0
    draw(pipe, 128)
    assert calls["compiled"] == 2 * per_step

    for size in (72, 80, 88, 96):  # the limit: no more shapes are compiled
        compiler.request(((2, 4, size // 8, size // 8), (2, 77, 32), "torch.float32"))
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready")
    assert len(compiler.snapshot()["shapes"]) == MAX_COMPILED_SHAPES


def test_without_a_working_compiler_generation_stays_eager_and_says_why(tiny_model_dir, tmp_path):
    pipe = tiny_pipe(tiny_model_dir)
    before = draw(pipe)
    compiler = UNetCompiler(CompileOptions("on", process="inline", cache_dir=tmp_path / "cache"), "cpu",
                            backend="no-such-backend")
    compiler.attach(pipe, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "failed"), compiler.snapshot()
    assert "the UNet runs eagerly" in compiler.snapshot()["summary"]
    assert np.abs(draw(pipe).astype(int) - before).max() <= 2


def test_off_leaves_the_pipeline_alone(tiny_model_dir, tmp_path):
    pipe = tiny_pipe(tiny_model_dir)
    compiler = UNetCompiler(CompileOptions("auto", process="inline", cache_dir=tmp_path / "cache"), "cpu")
    compiler.attach(pipe, "tiny", native_size=64)
    assert not isinstance(pipe.unet, ShapeRouter) and compiler.snapshot()["status"] == "off"


@pytest.mark.parametrize("scope", COMPILE_SCOPES)
def test_a_lora_loads_into_a_routed_unet_and_changes_the_picture(tiny_model_dir, tmp_path, scope):
    from tests.support.tiny_lora import write_tiny_lora

    pipe = tiny_pipe(tiny_model_dir)
    compiler = UNetCompiler(CompileOptions("on", process="inline", scope=scope, cache_dir=tmp_path / "cache"), "cpu",
                            backend="eager")
    compiler.attach(pipe, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready")
    before = draw(pipe)
    lora = write_tiny_lora(tmp_path / "detail.safetensors", pipe.unet._eager, strength=2.0)
    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="detail")
    after = draw(pipe)  # new layers: the graph's guards fail, the call runs eagerly instead of recompiling
    assert np.abs(after.astype(int) - before).mean() > 1
    assert compiler.snapshot()["shapes"] == ["64x64"]


async def test_the_status_tab_shows_precision_and_compilation(manager):
    from ui.status_tab import render_status

    status = manager.status()
    assert status["precision"] == "float32 (auto for cpu)" and status["compile"]["status"] == "off"
    html = render_status(status)
    assert "<th>precision</th>" in html and "float32 (auto for cpu)" in html and "auto: off" in html


def test_a_model_loaded_while_the_last_one_compiles_is_compiled_too(tiny_model_dir, tmp_path):
    def slow_backend(graph, example_inputs):  # a compilation that takes a while
        time.sleep(1.5)
        return graph.forward

    first, second = tiny_pipe(tiny_model_dir), tiny_pipe(tiny_model_dir)
    compiler = UNetCompiler(CompileOptions("on", process="inline", cache_dir=tmp_path / "cache"), "cpu",
                            backend=slow_backend)
    compiler.attach(first, "first", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "compiling", 10)
    compiler.attach(second, "second", native_size=64)  # the first one's compilation is still running
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    assert compiler.snapshot()["model"] == "second" and compiler.snapshot()["shapes"] == ["64x64"]


CACHE_PROBE = """
import json, os, sys
from pathlib import Path
import diffusers.pipelines  # as the app does before any compilation: torch writes its default cache folder then
import torch
from torch._dynamo.utils import counters
from torch._inductor.runtime.cache_dir_utils import cache_dir
from engine.compiled import use_compile_cache

use_compile_cache(Path(sys.argv[1]))
if sys.argv[2] == "compile":
    torch.compile(lambda x: torch.sin(x) * 2 + 1, backend="inductor")(torch.ones(8))
print(json.dumps({"cache_dir": cache_dir(), "hits": counters["inductor"]["fxgraph_cache_hit"],
                  "misses": counters["inductor"]["fxgraph_cache_miss"]}))
"""


def compile_in_a_fresh_process(folder, compile_code: bool = True, **env):
    import json
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}  # (set by earlier tests)
    done = subprocess.run([sys.executable, "-c", CACHE_PROBE, str(folder), "compile" if compile_code else "choose"],
                          capture_output=True, text=True, timeout=240, env={**clean, **env},
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_compile_cache_is_kept_in_our_folder_and_a_restart_reuses_it(tmp_path):
    """Inductor's code goes into the app's cache folder even though importing diffusers already made torch choose
    its default under /tmp, and a second process (a restart) finds the graph there instead of compiling it again;
    a TORCHINDUCTOR_CACHE_DIR the user set is kept."""
    folder = tmp_path / "compile-cache"
    first = compile_in_a_fresh_process(folder)
    assert first["cache_dir"] == str(folder) and first["misses"] >= 1 and first["hits"] == 0
    assert any(folder.rglob("*.py")) or any(folder.rglob("*.so"))  # the generated code is there
    again = compile_in_a_fresh_process(folder)
    assert again["hits"] >= 1 and again["misses"] == 0  # the restart compiled nothing
    chosen = tmp_path / "users-own"
    assert compile_in_a_fresh_process(folder, compile_code=False, TORCHINDUCTOR_CACHE_DIR=str(chosen))["cache_dir"] \
        == str(chosen)


def test_the_sizes_asked_for_are_compiled_at_load_instead_of_the_native_one(tiny_model_dir, tmp_path, monkeypatch):
    pipe = tiny_pipe(tiny_model_dir)
    sizes = parse_compile_sizes(" 96x64, 64x64,96x64")
    compiler = UNetCompiler(CompileOptions("on", process="inline", cache_dir=tmp_path / "cache", sizes=sizes), "cpu",
                            backend=counting_backend)
    compiler.attach(pipe, "tiny", native_size=512)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    assert compiler.snapshot()["shapes"] == ["96x64", "64x64"]  # in the order given, once each; 512 is not compiled
    GRAPH_CALLS["compiled"] = 0
    np.asarray(pipe("a fox", num_inference_steps=2, width=96, height=64, guidance_scale=5.0).images[0])
    assert GRAPH_CALLS["compiled"] == 2  # a 96x64 request ran on the graph from its first step

    for wrong in ("1024", "1024x1001", "32x32", "axb"):
        with pytest.raises(ValueError, match="GATOR_COMPILE_SIZES lists sizes as WIDTHxHEIGHT"):
            parse_compile_sizes(wrong)
    with pytest.raises(ValueError, match=f"at most {MAX_COMPILED_SHAPES} sizes"):
        parse_compile_sizes(",".join(f"{64 + 8 * i}x64" for i in range(MAX_COMPILED_SHAPES + 1)))
    monkeypatch.setenv("GATOR_COMPILE_SIZES", "832x1216,1216-832")
    with pytest.raises(ValueError, match="got '1216-832'"):
        Settings.from_env()


@pytest.mark.parametrize("scope", COMPILE_SCOPES)
def test_requests_on_one_worker_never_stop_anothers_compilation(tiny_model_dir, tmp_path, scope):
    """Two workers (two pipelines, two compilers): while worker A's requests run on its graphs, worker B compiles
    a new size in the background, and B's requests then run on B's graph. (Requests only run graphs made already,
    in their own thread; a process-wide "never compile" setting would have made B's compilation a no-op.)"""
    def slow_counting_backend(graph, example_inputs):
        time.sleep(0.5)
        return counting_backend(graph, example_inputs)

    torch._dynamo.reset()  # graphs earlier tests made (with other backends) would serve these calls
    first, second = tiny_pipe(tiny_model_dir), tiny_pipe(tiny_model_dir)
    options = CompileOptions("on", process="inline", scope=scope, cache_dir=tmp_path / "cache")
    worker_a = UNetCompiler(options, "cpu", backend=counting_backend)
    worker_a.attach(first, "tiny", native_size=64)
    assert wait_for(lambda: worker_a.snapshot()["status"] == "ready")
    busy = threading.Event()

    def requests_on_a() -> None:
        while not busy.is_set():
            draw(first)
    thread = threading.Thread(target=requests_on_a)
    thread.start()
    try:
        worker_b = UNetCompiler(replace(options, sizes=((96, 96),)), "cpu", backend=slow_counting_backend)
        worker_b.attach(second, "tiny", native_size=64)
        assert wait_for(lambda: worker_b.snapshot()["status"] == "ready"), worker_b.snapshot()
    finally:
        busy.set()
        thread.join()
    per_step = 1 if scope == "unet" else len(repeated_blocks(second.unet._eager))
    GRAPH_CALLS["compiled"] = 0
    draw(second, 96)
    assert GRAPH_CALLS["compiled"] == 2 * per_step


SWAP_PROBE = """
import json, sys
from pathlib import Path
import torch
from diffusers import StableDiffusionPipeline
from engine.compiled import CompileOptions, UNetCompiler

if sys.argv[3] == "attach":
    pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True, safety_checker=None)
    compiler = UNetCompiler(CompileOptions("on", process="inline", cache_dir=Path(sys.argv[2])), "cpu", backend="eager")
    compiler.attach(pipe, "tiny", native_size=64)
failing = []  # fx traces whose module-call swap breaks other threads: fx's own Tracer.call_module (make_fx's passes
trace = torch.fx.Tracer.trace  # the call through, harmlessly)

def watched(self, root, concrete_args=None):
    if type(self).call_module is torch.fx.Tracer.call_module:
        failing.append(type(self).__name__)
    return trace(self, root, concrete_args)

torch.fx.Tracer.trace = watched
with torch._inductor.config.patch(fx_graph_cache=False):  # code generated now, as for a size not in the cache
    torch.compile(lambda x: torch.sin(x) * 2 + 1, backend="inductor")(torch.ones(8))
print(json.dumps(failing))
"""


def test_the_fx_trace_that_breaks_other_threads_is_made_before_requests_run(tiny_model_dir, tmp_path):
    """Inductor's first code generation in a process traces a placeholder with torch.fx, which swaps
    nn.Module.__call__ for every thread while it runs: a request's eager UNet then failed on an H100. A compiler
    makes that trace when it is made (with its worker, before any request), so no compilation makes it beside a
    request; without one the trace is seen."""
    import json
    import subprocess
    import sys

    def failing_traces(when: str) -> list[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
        done = subprocess.run([sys.executable, "-c", SWAP_PROBE, str(tiny_model_dir), str(tmp_path / "cache"), when],
                              capture_output=True, text=True, timeout=240, env=clean,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert failing_traces("no compiler") == ["Tracer"]  # what a request beside the first code generation met
    assert failing_traces("attach") == []


def test_a_child_process_makes_the_code_and_the_compiler_finds_it_in_the_cache(tiny_model_dir, tmp_path):
    """GATOR_COMPILE_PROCESS=child: the code is generated in a child process (tracing there never holds this
    process's GIL against running requests); the compiler then finds every graph in the cache, makes none, and
    draws what eager drew. Inductor, the backend with a cache; the regional scope keeps it short."""
    from torch._dynamo.utils import counters

    pipe = tiny_pipe(tiny_model_dir)
    before = draw(pipe)
    made, found = counters["inductor"]["fxgraph_cache_miss"], counters["inductor"]["fxgraph_cache_hit"]
    compiler = UNetCompiler(CompileOptions("on", scope="blocks", cache_dir=tmp_path / "cache", process="child"),
                            "cpu", backend="inductor")
    compiler.attach(pipe, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready", 600), compiler.snapshot()
    assert counters["inductor"]["fxgraph_cache_miss"] == made  # no code generated in this process
    assert counters["inductor"]["fxgraph_cache_hit"] > found
    assert np.abs(draw(pipe).astype(int) - before).max() <= 2
    with pytest.raises(ValueError, match="GATOR_COMPILE_PROCESS must be one of inline, child"):
        Settings.from_env(compile_process="thread")


def test_a_child_that_cannot_compile_leaves_it_to_this_process_and_the_status_tab_says_so(tiny_model_dir, tmp_path):
    """A compile backend given as a function of this process cannot go to a child: the UNet is compiled here, and
    the status tab names the process used and why, not the one asked for."""
    from ui.status_tab import render_status

    def this_process_backend(graph, example_inputs):
        return graph.forward

    compiler = UNetCompiler(CompileOptions("on", cache_dir=tmp_path / "cache", process="child"), "cpu",
                            backend=this_process_backend)
    compiler.attach(tiny_pipe(tiny_model_dir), "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    snapshot = compiler.snapshot()
    assert snapshot["process"] == "inline" and "a function of this process" in snapshot["inline_reason"]
    line = render_status({"compile": snapshot})
    assert "in this process (a child could not: the compile backend is a function" in line


PRECOMPILE_PROBE = """
import json, sys, time
from pathlib import Path
import numpy as np
import torch
from torch._dynamo.utils import counters
from diffusers import StableDiffusionPipeline
from engine.compiled import CompileOptions, UNetCompiler

pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True, safety_checker=None)
pipe.set_progress_bar_config(disable=True)
draw = lambda: np.asarray(pipe("a fox", num_inference_steps=2, width=64, height=64, guidance_scale=5.0,
                               generator=torch.Generator("cpu").manual_seed(3)).images[0])
eager = draw()
compiler = UNetCompiler(CompileOptions("on", cache_dir=Path(sys.argv[2]), process=sys.argv[3]), "cpu",
                        backend="aot_eager")
compiler.attach(pipe, "tiny", native_size=64)
deadline = time.monotonic() + 600
while compiler.snapshot()["status"] not in ("ready", "failed") and time.monotonic() < deadline:
    time.sleep(0.05)
traced = counters["stats"]["unique_graphs"]
calls = {"eager": 0}
unet = pipe.unet._eager
called = type(unet).__call__  # counted on the class: a hook on the UNet itself would change what its guards see


def counted(self, *args, **kwargs):
    calls["eager"] += 1
    return called(self, *args, **kwargs)


type(unet).__call__ = counted
compiled = draw()
result = {"status": compiler.snapshot()["summary"], "traced": traced, "eager_calls": calls["eager"],
          "differs_by": int(np.abs(compiled.astype(int) - eager).max()),
          "graphs": sorted(p.name for p in (Path(sys.argv[2]) / "graphs").glob("*"))}
print(json.dumps(result))
"""


def precompile_in_a_fresh_process(tiny_model_dir, folder, process: str) -> dict:
    import json
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    done = subprocess.run([sys.executable, "-c", PRECOMPILE_PROBE, str(tiny_model_dir), str(folder), process],
                          capture_output=True, text=True, timeout=900, env=clean,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not precompile_supported("aot_eager"), reason="this torch cannot save a compiled graph")
def test_a_restart_loads_the_saved_unet_graph_without_tracing_it_again(tiny_model_dir, tmp_path):
    """In fresh processes (aot_eager: Inductor's code generation takes minutes here; bench/compile_restart.py runs
    the same with Inductor): a child compiler (GATOR_COMPILE_PROCESS=child) traces its own UNet copy and saves the
    whole UNet's graph in the compile cache, and its parent loads it: the parent traces nothing,
    the steps run on the graph (the eager UNet is never called) and the picture is eager's. A second process (a
    restart) loads the graph without starting a child."""
    first = precompile_in_a_fresh_process(tiny_model_dir, tmp_path / "cache", "child")
    assert first["status"].startswith("ready: 64x64") and first["traced"] == 0, first
    assert len(first["graphs"]) == 1 and first["graphs"][0].endswith(GRAPH_SUFFIX)
    assert first["eager_calls"] == 0 and first["differs_by"] <= 2
    again = precompile_in_a_fresh_process(tiny_model_dir, tmp_path / "cache", "child")
    assert again["traced"] == 0 and again["eager_calls"] == 0 and again["differs_by"] <= 2, again
    assert again["graphs"] == first["graphs"]


def save_graph(unet, folder: Path, size: int = 64) -> None:
    """What a child compiler does for its parent: `unet`'s whole graph for `size` compiled (aot_eager) and saved."""
    from engine.compiled import compile_shape, compiled_functions

    compiling, _running = compiled_functions(unet, "unet", "aot_eager", folder, save_graphs=True)
    compile_shape(compiling, unet, ((2, unet.config.in_channels, size // 8, size // 8),
                                    (2, 77, unet.config.cross_attention_dim), str(unet.dtype)))


def test_a_saved_unet_graph_is_loaded_by_the_next_compiler(tiny_model_dir, tmp_path, monkeypatch):
    """aot_eager (AOTAutograd without code generation: seconds). An inline compiler saves no graph. A graph saved
    as a child saves it is loaded by a compiler of another pipeline (other weights: another checkpoint of the
    architecture) instead of traced; its steps run on it and draw that pipeline's own eager picture; a LoRA's layers
    fail its guards and run eagerly."""
    from torch._dynamo.utils import counters

    from tests.support.tiny_lora import write_tiny_lora

    first = tiny_pipe(tiny_model_dir)
    inline = UNetCompiler(CompileOptions("on", process="inline", cache_dir=tmp_path / "cache"), "cpu",
                          backend="aot_eager")
    inline.attach(first, "tiny", native_size=64)
    assert wait_for(lambda: inline.snapshot()["status"] == "ready"), inline.snapshot()
    assert not list(tmp_path.rglob(f"*{GRAPH_SUFFIX}"))  # an inline compiler shares its UNet with requests: no save
    save_graph(first.unet._eager, tmp_path / "cache" / "graphs")
    assert len(list((tmp_path / "cache" / "graphs").glob(f"*{GRAPH_SUFFIX}"))) == 1

    second = tiny_pipe(tiny_model_dir)
    with torch.no_grad():
        for parameter in second.unet.parameters():
            parameter.mul_(0.9)
    before = draw(second)
    traced = counters["stats"]["unique_graphs"]
    compiler = UNetCompiler(CompileOptions("on", cache_dir=tmp_path / "cache", process="child"), "cpu",
                            backend="aot_eager")
    compiler.attach(second, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    assert counters["stats"]["unique_graphs"] == traced  # loaded (no child needed): nothing traced
    eager_calls, called = {"count": 0}, type(second.unet._eager).__call__

    def counted(self, *args, **kwargs):  # on the class: a hook on the UNet would send its calls eagerly
        eager_calls["count"] += 1
        return called(self, *args, **kwargs)
    monkeypatch.setattr(type(second.unet._eager), "__call__", counted)
    assert np.abs(draw(second).astype(int) - before).max() <= 2
    assert eager_calls["count"] == 0  # both steps ran on the loaded graph

    lora = write_tiny_lora(tmp_path / "detail.safetensors", second.unet._eager, strength=2.0)
    second.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="detail")
    assert np.abs(draw(second).astype(int) - before).mean() > 1  # the LoRA's picture
    assert eager_calls["count"] == 2  # its layers fail the graph's guards: both steps ran eagerly


@pytest.mark.skipif(not precompile_supported("aot_eager"), reason="this torch cannot save a compiled graph")
def test_a_damaged_saved_graph_is_compiled_around_and_removed(tiny_model_dir, tmp_path, caplog):
    """A saved graph that cannot be read (cut short by a full disk, say) does not cost the compiled UNet: it is
    compiled as without one, draws eager's picture, and the file goes, so the next start's child saves a good one
    instead of every start failing on it."""
    caplog.set_level(logging.INFO, logger="engine.precompiled")
    pipe = tiny_pipe(tiny_model_dir)
    save_graph(pipe.unet, tmp_path / "cache" / "graphs")
    [saved] = (tmp_path / "cache" / "graphs").glob(f"*{GRAPH_SUFFIX}")
    saved.write_bytes(saved.read_bytes()[:200])
    before = draw(pipe)
    compiler = UNetCompiler(CompileOptions("on", cache_dir=tmp_path / "cache", process="child"), "cpu",
                            backend="aot_eager")
    compiler.attach(pipe, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    assert np.abs(draw(pipe).astype(int) - before).max() <= 2
    assert not saved.exists() and "could not be loaded" in caplog.text and "the file is removed" in caplog.text


def test_a_shape_torch_cannot_precompile_is_compiled_without_a_saved_graph(tiny_model_dir, tmp_path, caplog):
    """A graph break (here a hook's) stops the ahead-of-time compile, which needs one graph: the shape is compiled
    as without saving, calls run on that, and the log says a restart compiles it again."""
    from engine.compiled import compile_shape, compiled_functions

    unet = tiny_pipe(tiny_model_dir).unet
    unet.conv_in.register_forward_pre_hook(lambda *_: torch._dynamo.graph_break())
    compiling, running = compiled_functions(unet, "unet", "aot_eager", tmp_path / "graphs", save_graphs=True)
    compile_shape(compiling, unet, ((2, 4, 8, 8), (2, 77, unet.config.cross_attention_dim), str(unet.dtype)))
    assert not list(tmp_path.rglob(f"*{GRAPH_SUFFIX}"))
    assert "could not be precompiled for 64x64" in caplog.text and "a restart compiles it again" in caplog.text
    precompiled = running.__self__
    runs, run = {"count": 0}, precompiled._traced_running

    def counted(*args, **kwargs):
        runs["count"] += 1
        return run(*args, **kwargs)
    precompiled._traced_running = counted
    sample, timestep, text = unet_inputs(unet, 64)
    with torch.no_grad():
        expected = unet(sample, timestep, encoder_hidden_states=text, return_dict=False)[0]
        got = running(sample, timestep, encoder_hidden_states=text, return_dict=False)[0]
    assert runs["count"] == 1 and torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["saved graph", "torch.compile"])
def test_a_hook_on_a_compiled_unet_is_honoured(tiny_model_dir, tmp_path, kind, monkeypatch):
    """CFG rescale reaches the UNet's output through a forward hook (engine/backends/guidance_rescale.py); compiled
    graphs ignore hooks added after they were made, so a call with a hook on the UNet runs eagerly and the hook
    acts (here one that halves the prediction, which shows plainly in the picture), with either kind of graph."""
    def halved(_module, _args, output):
        return (output[0] * 0.5, *output[1:])

    plain = tiny_pipe(tiny_model_dir)
    handle = plain.unet.register_forward_hook(halved)
    expected = draw(plain)
    handle.remove()
    pipe = tiny_pipe(tiny_model_dir)
    if kind == "saved graph":
        save_graph(pipe.unet, tmp_path / "cache" / "graphs")
        options, backend = CompileOptions("on", cache_dir=tmp_path / "cache", process="child"), "aot_eager"
    else:
        options, backend = CompileOptions("on", process="inline", cache_dir=tmp_path / "cache"), counting_backend
    compiler = UNetCompiler(options, "cpu", backend=backend)
    compiler.attach(pipe, "tiny", native_size=64)
    assert wait_for(lambda: compiler.snapshot()["status"] == "ready"), compiler.snapshot()
    eager_calls, called = {"count": 0}, type(pipe.unet._eager).__call__

    def counted(self, *args, **kwargs):  # on the class, not a hook: counts the steps the eager UNet ran
        eager_calls["count"] += 1
        return called(self, *args, **kwargs)
    if kind == "saved graph":  # (torch.compile's own wrapper calls the class's __call__: its graph runs are counted)
        monkeypatch.setattr(type(pipe.unet._eager), "__call__", counted)

    def graph_steps() -> int:
        return 2 - eager_calls["count"] if kind == "saved graph" else GRAPH_CALLS["compiled"]
    GRAPH_CALLS["compiled"] = 0
    unhooked = draw(pipe)
    assert graph_steps() == 2  # without a hook both steps ran on the graph
    eager_calls["count"], GRAPH_CALLS["compiled"] = 0, 0
    handle = pipe.unet.register_forward_hook(halved)
    assert np.abs(draw(pipe).astype(int) - expected).max() <= 2
    assert graph_steps() == 0  # with one, both ran eagerly
    handle.remove()
    assert np.abs(unhooked.astype(int) - expected).mean() > 1  # (the hook shows in the picture)
