"""GPU benchmark on full-size SDXL: the raw diffusers pipeline vs the engine (previews on / off), eager and with
the engine's compiled UNet (engine/compiled.py), interleaved, medians; fp16 vs bf16 and the VAE's fp32 upcast;
a restart that finds the compile cache warm; a GPU memory cap that needs CPU offload; UNet FLOPs per step and
achieved TFLOP/s; peak GPU memory.

SDXL is built from its published configs with random weights on the device (no download), saved as a
diffusers folder and loaded by the engine through GATOR_MODELS_DIR, as a user's own copy would be.
Each section adds to the JSON file as it ends (a failed section records its error and the rest go on);
a table for BENCHMARKS.md is printed at the end.

    python bench/gpu_sdxl.py --out gpu.json                # on a CUDA machine, about six minutes
    python bench/gpu_sdxl.py --small --out small.json      # the same code path on the CPU in seconds
    python bench/gpu_sdxl.py --small --sections all --compile-backend eager   # every section, on the CPU
    python bench/gpu_sdxl.py --sections compiled,warm_restart --compile-scope blocks   # regional compilation

Runs from the project's virtualenv or from a `pip install --target` of its wheels (it needs the engine,
diffusers, transformers and torch; not gradio).
"""
from __future__ import annotations

import argparse
import atexit
import asyncio
import cProfile
import json
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.compiled import COMPILE_PROCESSES, COMPILE_SCOPES, DEFAULT_COMPILE_PROCESS  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.manager import AIModelManager  # noqa: E402
from engine.registry import find_model, probe_hardware  # noqa: E402
from engine.tiny_model import _tiny_vocab  # noqa: E402

SDXL_ID = "sdxl-1.0"  # the catalogue entry whose folder GATOR_MODELS_DIR/sdxl-1.0 the engine loads
PROMPT = "a lighthouse on a cliff at dusk, dramatic sky"

# Published SDXL base 1.0 configs (stabilityai/stable-diffusion-xl-base-1.0), and a small stand-in.
FULL = {
    "unet": dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
    "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=1024,
                scaling_factor=0.13025, force_upcast=True),
    "text": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 projection_dim=768, hidden_act="quick_gelu"),
    "text_2": dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                   projection_dim=1280, hidden_act="gelu"),
}
SMALL = {
    "unet": dict(sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 transformer_layers_per_block=(1, 1), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                 cross_attention_dim=64, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=80, norm_num_groups=32),
    "vae": dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, latent_channels=4, sample_size=256,
                scaling_factor=0.13025, norm_num_groups=32),
    "text": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32),
    "text_2": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                   projection_dim=32),
}


def build_sdxl(config: dict[str, dict[str, Any]], device: str, dtype: torch.dtype):
    """An SDXL pipeline with random weights, made directly on `device` (the tokenizers are byte-level)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = _tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77)
    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        text_encoder = CLIPTextModel(CLIPTextConfig(**common, **config["text"]))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**common, **config["text_2"]))
        unet = UNet2DConditionModel(**config["unet"])
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, **config["vae"])
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)
    return pipe.to(dtype=dtype)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def interleaved(variants: dict[str, Callable[[], Any]], repeat: int, device: str) -> dict[str, list[float]]:
    """Each variant once to warm up, then `repeat` rounds in rotated order."""
    for fn in variants.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(repeat):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            samples[name].append(timed(variants[name], device))
    return samples


def unet_flops(pipe, width: int, height: int, device: str) -> float:
    """FLOPs of one UNet call with classifier-free guidance (batch 2), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipe.unet
    dtype = unet.dtype
    latents = torch.randn(2, 4, height // 8, width // 8, device=device, dtype=dtype)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    pooled = torch.randn(2, pipe.text_encoder_2.config.projection_dim, device=device, dtype=dtype)
    time_ids = torch.tensor([[height, width, 0, 0, height, width]] * 2, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(latents, 500, encoder_hidden_states=text,
             added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids})
    return float(counter.get_total_flops())


SECTIONS = ("eager", "dtype", "compiled", "warm_restart", "memory_cap")
# on request only (--sections): the raw pipeline with diffusers' regional compilation (one transformer block
# compiled and reused, not the whole UNet), its first call and its speed, to weigh against the whole-UNet graph
EXTRA_SECTIONS = ("regional",)
CPU_SECTIONS = ("eager",)  # --small runs these unless --sections says otherwise


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def compared(samples: dict[str, list[float]], beside: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each variant's median and fastest time, and its ratio to the raw run it was interleaved with (`beside`;
    "raw" otherwise): median over median, fastest over fastest, and for interleaved variants the median of the
    per-round ratios (a round's variants ran back to back, so a slow spell of a shared machine mostly cancels)."""
    table: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        reference = beside.get(name, "raw")
        entry: dict[str, Any] = {"median_s": median(values), "fastest_s": round(min(values), 4),
                                 "samples_s": [round(x, 4) for x in values], "beside": reference}
        base = samples.get(reference)
        if base:
            entry["vs_raw"] = round(statistics.median(values) / statistics.median(base), 3)
            entry["vs_raw_fastest"] = round(min(values) / min(base), 3)
            if name in beside and len(base) == len(values):
                entry["vs_raw_paired"] = round(statistics.median(v / b for v, b in zip(values, base)), 3)
        table[name] = entry
    return table


def engine_manager(work: Path, **settings: Any) -> tuple[AIModelManager, asyncio.AbstractEventLoop]:
    """An initialized manager over work/models (no ComfyUI), on this machine's hardware (and GPU memory cap)."""
    options = dict(comfyui_urls=[], enable_comfyui=False, output_dir=work / "outputs", models_dir=work / "models",
                   tiny_model_dir=work / "tiny", compile_mode="off")
    manager = AIModelManager(Settings(**{**options, **settings}))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    return manager, loop


def wait_compiled(compiler, timeout_s: float = 900.0) -> float:
    """Seconds until the compiler has nothing left to do; raises if it failed or timed out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        state = compiler.snapshot()
        if state["status"] == "ready":
            return time.perf_counter() - started
        if state["status"] == "failed":
            raise RuntimeError(state["summary"])
        time.sleep(0.2)
    raise TimeoutError(f"compiling took over {timeout_s:.0f} s")


def probe(work: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process (--probe): "warm_restart" loads the model with compilation on (the cache left by
    the main run) and times load start -> first compiled image; "memory_cap" makes one image under
    GATOR_GPU_MEMORY_GB with compilation off."""
    device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
    imports_s = time.time() - args.spawned_at if args.spawned_at else None  # the process start: Python, imports
    started = time.perf_counter()
    manager, loop = engine_manager(work, compile_mode="on" if mode == "warm_restart" else "off",
                                   compile_scope=args.compile_scope, compile_process=args.compile_process,
                                   compile_sizes=f"{args.size}x{args.size}",  # the size the main run compiled
                                   gpu_memory_gb=args.memory_cap_gb if mode == "memory_cap" else None)
    local = manager.router.last_resort
    local.pool[0].compiler.backend = args.compile_backend
    manager_s = time.perf_counter() - started
    profile = cProfile.Profile() if args.profile_load and mode == "warm_restart" else None
    if profile:
        profile.enable()
    pipe = local.pipeline(find_model(SDXL_ID), local.weights[SDXL_ID])
    if profile:
        profile.disable()
        with args.profile_load.open("w") as file:
            pstats.Stats(profile, stream=file).sort_stats("cumulative").print_stats(60)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 2),
                           "load_parts_s": {"process start and imports": round(imports_s, 2) if imports_s else None,
                                            "engine start (backends, hardware probe)": round(manager_s, 2),
                                            "pipeline load (and compiler attach)":
                                                round(time.perf_counter() - started - manager_s, 2)},
                           "offloaded": bool(getattr(pipe, "_offload_gpu_id", None) is not None
                                             or getattr(pipe, "_all_hooks", None))}
    if mode == "warm_restart":
        out["compile_s"] = round(wait_compiled(local.pool[0].compiler), 2)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    made = time.perf_counter()
    result = loop.run_until_complete(manager.generate_image(PROMPT, seed=1, model=SDXL_ID, width=args.size,
                                                            height=args.size, num_inference_steps=args.steps,
                                                            guidance_scale=7.0))
    out["status"], out["error"] = result.status, result.error
    out["image_s"] = round(time.perf_counter() - made, 2)
    if device == "cuda":
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    if mode == "warm_restart":
        out["first_compiled_image_after_load_start_s"] = round(time.perf_counter() - started, 2)
        other = args.size * 3 // 4 // 8 * 8 if args.size >= 256 else args.size + 64  # a size not compiled
        made = time.perf_counter()
        result = loop.run_until_complete(manager.generate_image(PROMPT, seed=1, model=SDXL_ID, width=other,
                                                                height=other, num_inference_steps=args.steps,
                                                                guidance_scale=7.0))
        out["other_size_right_after"] = {"size": other, "status": result.status,
                                         "seconds": round(time.perf_counter() - made, 3)}
        out["compile_state"] = local.pool[0].compiler.snapshot()
    return out  # no shutdown: the process ends at once (a compilation of the other size may be running)


def run_probe(work: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """`probe` in a child process (a cold start, its own GPU memory); its JSON answer."""
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", mode, "--work", str(work),
               "--size", str(args.size), "--steps", str(args.steps), "--compile-backend", args.compile_backend,
               "--compile-scope", args.compile_scope, "--compile-process", args.compile_process,
               "--memory-cap-gb", str(args.memory_cap_gb), "--spawned-at", repr(time.time())] \
        + (["--small"] if args.small else []) \
        + (["--profile-load", str(args.profile_load)] if args.profile_load else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    for line in done.stderr.splitlines():  # the probe's engine log (a loaded or traced graph, say), for the record
        if " engine." in line:
            print(f"[{mode}] {line}", file=sys.stderr)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a small SDXL-shaped model on the CPU (dry run)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 1024; 64 with --small)")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default 30; 2 with --small)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds (default 3; 1 with --small)")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated, or all: {', '.join(SECTIONS)} (default all; eager with --small); "
                             f"also {', '.join(EXTRA_SECTIONS)}")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: a dry run)")
    parser.add_argument("--compile-scope", choices=COMPILE_SCOPES, default="unet",
                        help="what the engine compiles: the whole UNet or only its repeated transformer blocks")
    parser.add_argument("--compile-process", choices=COMPILE_PROCESSES, default=DEFAULT_COMPILE_PROCESS,
                        help="where the engine generates the compiled code: this process, or a child process")
    parser.add_argument("--memory-cap-gb", type=float, default=8.0, help="the memory_cap section's GPU memory")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled and warm_restart sections")
    parser.add_argument("--out", type=Path, default=Path("gpu_sdxl.json"))
    parser.add_argument("--profile-load", type=Path, help="write a profile of the restart's pipeline load here")
    parser.add_argument("--probe", choices=("warm_restart", "memory_cap"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)  # the probe's parent, at its launch
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,  # ms since the process started: the restart's parts
                        format="%(relativeCreated)7.0fms %(threadName)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("engine").setLevel(logging.INFO)  # what the engine did: compiled, loaded, fell back
    args.small = args.small or not torch.cuda.is_available()
    args.size = args.size or (64 if args.small else 1024)
    args.steps = args.steps or (2 if args.small else 30)
    if args.probe:
        print(json.dumps(probe(args.work, args.probe, args)), flush=True)
        os._exit(0)  # the answer is out; skip interpreter teardown (compiled-code threads can abort it)
    repeat = args.repeat or (1 if args.small else 3)
    wanted = SECTIONS if args.sections == "all" else tuple(args.sections.split(",")) if args.sections \
        else CPU_SECTIONS if args.small else SECTIONS
    if args.no_compile:
        wanted = tuple(s for s in wanted if s not in ("compiled", "warm_restart"))
    size, steps, small = args.size, args.steps, args.small
    device, dtype = ("cpu", torch.float32) if small else ("cuda", torch.float16)
    work = Path(tempfile.mkdtemp(prefix="gator-gpu-bench-"))
    atexit.register(shutil.rmtree, work, True)  # the saved model (7 GB at full size) goes with the run
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                              "torch": torch.__version__, "size": size, "steps": steps, "repeat": repeat,
                              "guidance": 7.0, "dtype": str(dtype).replace("torch.", ""), "small": small,
                              "compile_scope": args.compile_scope, "compile_process": args.compile_process,
                              "sections": list(wanted), "variants": {}, "errors": {}}

    beside: dict[str, str] = {}  # each interleaved variant's raw reference, the run it alternated with

    def save() -> None:
        args.out.write_text(json.dumps(report, indent=2))

    started = time.perf_counter()
    built = build_sdxl(SMALL if small else FULL, device, dtype)
    built.save_pretrained(work / "models" / SDXL_ID, safe_serialization=True)
    del built
    if device == "cuda":
        torch.cuda.empty_cache()
    report["build_and_save_s"] = round(time.perf_counter() - started, 2)

    manager, loop = engine_manager(work)
    local = manager.router.last_resort
    spec = find_model(SDXL_ID)
    started = time.perf_counter()
    pipe = local.pipeline(spec, local.weights[SDXL_ID])  # the very pipeline object the engine runs
    report["load_s"] = round(time.perf_counter() - started, 2)
    report["unet_parameters"] = sum(p.numel() for p in pipe.unet.parameters())
    call = dict(width=size, height=size, num_inference_steps=steps, guidance_scale=7.0)
    eager_unet = pipe.unet

    def raw() -> None:
        pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(1), **call)

    def raw_eager() -> None:  # the pipeline as diffusers runs it, whatever the engine put in place of its UNet
        routed, pipe.unet = pipe.unet, eager_unet
        try:
            raw()
        finally:
            pipe.unet = routed

    def engine(previews: bool) -> None:
        result = loop.run_until_complete(manager.generate_image(PROMPT, seed=1, model=SDXL_ID, previews=previews,
                                                                **call))
        assert result.status == "success" and result.model_id == SDXL_ID, result.error

    def section(name: str, body: Callable[[], None]) -> None:
        if name not in wanted:
            return
        started = time.perf_counter()
        try:
            body()
        except Exception as err:  # one section's failure must not lose the others' numbers
            report["errors"][name] = f"{type(err).__name__}: {err}"[:500]
            print(f"section {name} failed: {report['errors'][name]}", file=sys.stderr, flush=True)
        report.setdefault("section_s", {})[name] = round(time.perf_counter() - started, 1)
        save()

    def eager_section() -> None:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        samples = interleaved({"raw": raw, "engine, previews on": lambda: engine(True),
                               "engine, previews off": lambda: engine(False)}, repeat, device)
        report["variants"].update(samples)
        beside.update(dict.fromkeys(samples, "raw"))
        if device == "cuda":
            report["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)

    def dtype_section() -> None:
        times = {"float16": [timed(raw, device) for _ in range(repeat)]}
        pipe.to(dtype=torch.bfloat16)
        try:
            raw()  # warm-up in the new dtype
            times["bfloat16"] = [timed(raw, device) for _ in range(repeat)]
        finally:
            pipe.to(dtype=dtype)
        report["dtype_raw_s"] = {name: median(v) for name, v in times.items()}
        latents = torch.randn(1, 4, size // 8, size // 8, device=device)
        vae = pipe.vae
        decode: dict[str, float] = {}
        for name, vae_dtype in (("float32 (the upcast)", torch.float32), ("float16", torch.float16),
                                ("bfloat16", torch.bfloat16)):
            vae.to(dtype=vae_dtype)
            with torch.no_grad():
                vae.decode(latents.to(vae_dtype))
                decode[name] = median([timed(lambda: vae.decode(latents.to(vae_dtype)), device) for _ in range(5)])
        vae.to(dtype=dtype)
        report["vae_decode_s"] = decode

    def compiled_section() -> None:
        from engine.compiled import UNetCompiler

        options = replace(manager.settings.compile_options, mode="on", scope=args.compile_scope,
                          process=args.compile_process)
        local.pool[0].compiler = UNetCompiler(options, device, backend=args.compile_backend)
        started = time.perf_counter()
        local.pool[0].compiler.attach(pipe, spec.label, size)
        report["request_while_compiling_s"] = round(timed(lambda: engine(True), device), 3)  # eager meanwhile
        save()
        wait_compiled(local.pool[0].compiler)
        report["compile_cold_s"] = round(time.perf_counter() - started, 1)
        samples = interleaved({"raw (eager UNet)": raw_eager, "engine compiled, previews on": lambda: engine(True),
                               "engine compiled, previews off": lambda: engine(False)}, repeat, device)
        again = "raw, again beside the compiled runs"
        report["variants"].update({again: samples.pop("raw (eager UNet)"), **samples})
        beside.update(dict.fromkeys([again, *samples], again))
        report["compile_state"] = local.pool[0].compiler.snapshot()

    section("eager", eager_section)
    section("dtype", dtype_section)
    section("compiled", compiled_section)
    manager.shutdown()
    pipe.unet = eager_unet
    flops = unet_flops(pipe, size, size, device)

    def regional_section() -> None:
        started = time.perf_counter()
        eager_unet.compile_repeated_blocks(fullgraph=True, backend=args.compile_backend)
        raw()  # the first call compiles the block
        report["regional_first_call_s"] = round(time.perf_counter() - started, 1)
        report["variants"]["raw, regional compile (repeated blocks)"] = [timed(raw, device) for _ in range(repeat)]

    section("regional", regional_section)
    del pipe, eager_unet, manager
    if device == "cuda":
        torch.cuda.empty_cache()
    section("memory_cap", lambda: report.__setitem__("memory_cap", run_probe(work, "memory_cap", args)))
    section("warm_restart", lambda: report.__setitem__("warm_restart", run_probe(work, "warm_restart", args)))

    report["variants"] = compared(report["variants"], beside)
    report["unet_tflop_per_step"] = round(flops / 1e12, 3)
    if "raw" in report["variants"]:
        # an upper bound per step: the whole image over its steps (text encode, VAE included)
        step_s = report["variants"]["raw"]["median_s"] / steps
        report["achieved_tflops_upper_bound_step_time"] = round(flops / step_s / 1e12, 1)
    save()
    print_table(report)


def print_table(report: dict[str, Any]) -> None:
    """The markdown BENCHMARKS.md shows."""
    print(f"<!-- {report['device']}, torch {report['torch']}, {report['dtype']}, SDXL "
          f"{report['unet_parameters'] / 1e9:.2f} B UNet parameters{' (small stand-in)' if report['small'] else ''}, "
          f"{report['size']}x{report['size']}, {report['steps']} Euler steps, CFG 7, {report['repeat']} interleaved "
          f"rounds; compile scope {report['compile_scope']}, process {report['compile_process']}; "
          f"built+saved in {report['build_and_save_s']} s, "
          f"loaded by the engine in {report['load_s']} s -->")
    print("| variant | median / fastest (s) | vs the raw run beside it: medians / fastest / per round |")
    print("| --- | --- | --- |")
    for name, v in report["variants"].items():
        ratios = " / ".join(f"{v[key]:.3f}x" if key in v else "-"
                            for key in ("vs_raw", "vs_raw_fastest", "vs_raw_paired"))
        print(f"| {name} | {v['median_s']} / {v['fastest_s']} | {ratios} ({v['beside']}) |")
    for key in ("request_while_compiling_s", "compile_cold_s", "compile_state", "dtype_raw_s", "vae_decode_s", "warm_restart",
                "memory_cap", "peak_allocated_gib", "unet_tflop_per_step", "achieved_tflops_upper_bound_step_time",
                "errors"):
        if report.get(key) not in (None, {}):
            print(f"- {key}: {json.dumps(report[key])}")


if __name__ == "__main__":
    main()
