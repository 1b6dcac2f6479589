"""GPU benchmark on full-size SDXL: the raw diffusers pipeline vs the engine (previews on / off) vs a
compiled UNet, interleaved, medians; UNet FLOPs per step and achieved TFLOP/s; peak GPU memory.

SDXL is built from its published configs with random weights on the device (no download), saved as a
diffusers folder and loaded by the engine through GATOR_MODELS_DIR, as a user's own copy would be.
Writes a JSON file and prints a table for BENCHMARKS.md.

    python bench/gpu_sdxl.py --out gpu.json                # on a CUDA machine, a few minutes
    python bench/gpu_sdxl.py --small --out small.json      # the same code path on the CPU in seconds

Runs from the project's virtualenv or from a `pip install --target` of its wheels (it needs the engine,
diffusers, transformers and torch; not gradio).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a small SDXL-shaped model on the CPU (dry run)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 1024; 64 with --small)")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default 30; 2 with --small)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds (default 3; 1 with --small)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--out", type=Path, default=Path("gpu_sdxl.json"))
    args = parser.parse_args()
    small = args.small or not torch.cuda.is_available()
    size = args.size or (64 if small else 1024)
    steps = args.steps or (2 if small else 30)
    repeat = args.repeat or (1 if small else 3)
    device, dtype = ("cpu", torch.float32) if small else ("cuda", torch.float16)
    work = Path(tempfile.mkdtemp(prefix="gator-gpu-bench-"))
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                              "torch": torch.__version__, "size": size, "steps": steps, "repeat": repeat,
                              "guidance": 7.0, "dtype": str(dtype).replace("torch.", ""), "small": small}

    started = time.perf_counter()
    built = build_sdxl(SMALL if small else FULL, device, dtype)
    built.save_pretrained(work / "models" / SDXL_ID, safe_serialization=True)
    del built
    if device == "cuda":
        torch.cuda.empty_cache()
    report["build_and_save_s"] = round(time.perf_counter() - started, 2)

    hardware = probe_hardware()
    settings = Settings(comfyui_urls=[], enable_comfyui=False, output_dir=work / "outputs",
                        models_dir=work / "models", tiny_model_dir=work / "tiny")
    manager = AIModelManager(settings, hardware=hardware)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    local = manager.router.last_resort
    spec = find_model(SDXL_ID)
    started = time.perf_counter()
    pipe = local.pipeline(spec, local.weights[SDXL_ID])  # the very pipeline object the engine runs
    report["load_s"] = round(time.perf_counter() - started, 2)
    report["unet_parameters"] = sum(p.numel() for p in pipe.unet.parameters())
    call = dict(width=size, height=size, num_inference_steps=steps, guidance_scale=7.0)

    def raw() -> None:
        pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(1), **call)

    def engine(previews: bool) -> None:
        result = loop.run_until_complete(manager.generate_image(PROMPT, seed=1, model=SDXL_ID, previews=previews,
                                                                **call))
        assert result.status == "success" and result.model_id == SDXL_ID, result.error

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    samples = interleaved({"raw": raw, "engine, previews on": lambda: engine(True),
                           "engine, previews off": lambda: engine(False)}, repeat, device)
    if device == "cuda":
        report["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    if not (args.no_compile or small):
        original = pipe.unet
        pipe.unet = torch.compile(original.to(memory_format=torch.channels_last))
        report["compile_first_call_s"] = round(timed(raw, device), 1)
        samples["raw, UNet compiled + channels_last"] = interleaved({"compiled": raw}, repeat, device)["compiled"]
        pipe.unet = original
    flops = unet_flops(pipe, size, size, device)
    base = statistics.median(samples["raw"])
    report["variants"] = {name: {"median_s": round(statistics.median(v), 4), "samples_s": [round(x, 4) for x in v],
                                 "vs_raw": round(statistics.median(v) / base, 3)} for name, v in samples.items()}
    step_s = base / steps  # an upper bound per step: the whole image over its steps (text encode, VAE included)
    report["unet_tflop_per_step"] = round(flops / 1e12, 3)
    report["achieved_tflops_upper_bound_step_time"] = round(flops / step_s / 1e12, 1)
    args.out.write_text(json.dumps(report, indent=2))
    manager.shutdown()

    print(f"<!-- {report['device']}, torch {report['torch']}, {report['dtype']}, SDXL "
          f"{report['unet_parameters'] / 1e9:.2f} B UNet parameters{' (small stand-in)' if small else ''}, "
          f"{size}x{size}, {steps} Euler steps, CFG 7, {repeat} interleaved rounds; built+saved in "
          f"{report['build_and_save_s']} s, loaded by the engine in {report['load_s']} s -->")
    print("| variant | median (s) | vs raw diffusers |")
    print("| --- | --- | --- |")
    for name, v in report["variants"].items():
        print(f"| {name} | {v['median_s']} | {v['vs_raw']:.3f}x |")
    print(f"\nUNet: {report['unet_tflop_per_step']} TFLOP per CFG step; at the raw per-step time "
          f"{step_s * 1000:.1f} ms that is {report['achieved_tflops_upper_bound_step_time']} TFLOP/s"
          + (f"; peak allocated {report['peak_allocated_gib']} GiB" if "peak_allocated_gib" in report else "")
          + (f"; first compiled call {report['compile_first_call_s']} s" if "compile_first_call_s" in report else ""))


if __name__ == "__main__":
    main()
