"""Random-weight single-file checkpoints in the original LDM key layout (as A1111/ComfyUI users have them).

The models are built from the committed diffusers configs (presets/pipelines) on the meta device, given
random fp16 values, and their state dicts renamed to the LDM/SGM names, as diffusers' scripts
convert_diffusers_to_original_stable_diffusion.py and convert_diffusers_to_original_sdxl.py do:
`model.diffusion_model.*` (UNet), `first_stage_model.*` (VAE), `cond_stage_model.transformer.*` (SD 1.5's
CLIP) or `conditioner.embedders.0.transformer.*` + `conditioner.embedders.1.model.*` (SDXL's CLIP and
OpenCLIP, with fused qkv). `small=True` SDXL keeps every key name but narrows the channels.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from engine.single_file import INPAINTING_IN_CHANNELS, PRESETS_DIR as PRESETS
CACHE_VERSION = "ldm-checkpoint-1"  # bump when the writers change: cached files are rebuilt
KEY_CHARS = 12
STD = 0.02

Tensors = dict[str, torch.Tensor]


# -- configs ------------------------------------------------------------------------------------

def _preset(family: str, component: str) -> dict[str, Any]:
    """One committed config, e.g. ("sd15", "unet")."""
    return json.loads((PRESETS / family / component / "config.json").read_text())


def small_sdxl_configs() -> dict[str, dict[str, Any]]:
    """SDXL's configs with narrow channels: same blocks, depths and key names, under 100 MB in fp16.

    The two text encoders keep different widths (diffusers tells them apart by it) and OpenCLIP keeps
    32 layers (SDXL is detected by `conditioner.embedders.1.model.transformer.resblocks.9.*`)."""
    te1 = {**_preset("sdxl", "text_encoder"), "hidden_size": 64, "intermediate_size": 256,
           "num_attention_heads": 4, "projection_dim": 64}
    te2 = {**_preset("sdxl", "text_encoder_2"), "hidden_size": 128, "intermediate_size": 512,
           "num_attention_heads": 4, "projection_dim": 128}
    unet = _preset("sdxl", "unet")
    unet.update(block_out_channels=[32, 64, 128], attention_head_dim=[2, 4, 8],
                cross_attention_dim=te1["hidden_size"] + te2["hidden_size"],
                projection_class_embeddings_input_dim=6 * unet["addition_time_embed_dim"] + te2["projection_dim"])
    vae = {**_preset("sdxl", "vae"), "block_out_channels": [32, 64, 128, 128]}
    return {"unet": unet, "vae": vae, "text_encoder": te1, "text_encoder_2": te2}


def component_configs(family: str, small: bool = False, inpainting: bool = False) -> dict[str, dict[str, Any]]:
    """The component configs a checkpoint of `family` is built from (`inpainting`: the UNet also takes the mask
    and the masked image's latents, 9 input channels)."""
    if family == "sdxl" and small:
        configs = small_sdxl_configs()
    else:
        components = ("unet", "vae", "text_encoder") + (("text_encoder_2",) if family == "sdxl" else ())
        configs = {name: _preset(family, name) for name in components}
    if inpainting:
        configs["unet"] = {**configs["unet"], "in_channels": INPAINTING_IN_CHANNELS}
    return configs


def write_small_sdxl_config(root: Path) -> Path:
    """Write `root/sdxl/`: the committed SDXL config folder with the small configs; returns `root`
    (pass it as load_single_file's `config_root`)."""
    folder = Path(root) / "sdxl"
    shutil.copytree(PRESETS / "sdxl", folder, dirs_exist_ok=True)
    for component, config in small_sdxl_configs().items():
        (folder / component / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return Path(root)


# -- random models ------------------------------------------------------------------------------

def _random_weights(model: torch.nn.Module, generator: torch.Generator) -> Tensors:
    """fp16 values for every entry of `model`'s state dict (a meta-device model: nothing is allocated
    twice): norm scales 1, biases 0, everything else N(0, 0.02)."""
    weights: Tensors = {}
    for name, meta in model.state_dict().items():
        if name.endswith("bias"):
            weights[name] = torch.zeros(meta.shape, dtype=torch.float16)
        elif name.endswith("weight") and meta.ndim == 1:
            weights[name] = torch.ones(meta.shape, dtype=torch.float16)
        else:
            weights[name] = torch.empty(meta.shape, dtype=torch.float16).normal_(0, STD, generator=generator)
    return weights


def _meta_model(component: str, config: dict[str, Any]) -> torch.nn.Module:
    """The diffusers/transformers model of `component`, built on the meta device."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        if component == "unet":
            return UNet2DConditionModel.from_config(config)
        if component == "vae":
            return AutoencoderKL.from_config(config)
        text_config = CLIPTextConfig.from_dict(config)
        if component == "text_encoder":
            return CLIPTextModel(text_config)
        return CLIPTextModelWithProjection(text_config)


def _text_model_keys(weights: Tensors) -> Tensors:
    """CLIPTextModel keys with the `text_model.` prefix (transformers >= 5.6 drops it)."""
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v for k, v in weights.items()}


# -- diffusers -> LDM names ---------------------------------------------------------------------

UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0",
               "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _unet_prefixes(config: dict[str, Any]) -> dict[str, str]:
    """diffusers block prefix -> LDM prefix, for any number of blocks (SD: 4, SDXL: 3)."""
    per_block = config["layers_per_block"]
    last = len(config["down_block_types"]) - 1
    prefixes = dict(UNET_TOP)
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(per_block):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{(per_block + 1) * i + j + 1}.0."
            if "CrossAttn" in kind:
                prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{(per_block + 1) * i + j + 1}.1."
        if i < last:
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(per_block + 1) * (i + 1)}.0.op."
    for i, kind in enumerate(config["up_block_types"]):
        for j in range(per_block + 1):
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{(per_block + 1) * i + j}.0."
            if "CrossAttn" in kind:
                prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{(per_block + 1) * i + j}.1."
        if i < last:
            slot = 2 if "CrossAttn" in kind else 1
            prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(per_block + 1) * i + per_block}.{slot}."
    prefixes.update({"mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
                     "mid_block.resnets.1.": "middle_block.2."})
    return prefixes


def _rename(key: str, prefixes: dict[str, str], inner: dict[str, str]) -> str:
    """Swap the longest matching prefix of `key`; in a resnet also its first inner name."""
    match = max((p for p in prefixes if key.startswith(p)), key=len, default=None)
    if match is None:
        raise KeyError(f"No LDM name for {key}")
    rest = key[len(match):]
    if ".resnets." in match:
        head, _, tail = rest.partition(".")
        rest = f"{inner.get(head, head)}.{tail}"
    return prefixes[match] + rest


def unet_to_ldm(weights: Tensors, config: dict[str, Any]) -> Tensors:
    """A diffusers UNet2DConditionModel state dict under `model.diffusion_model.*` names."""
    prefixes = _unet_prefixes(config)
    return {"model.diffusion_model." + _rename(k, prefixes, UNET_RESNET): v for k, v in weights.items()}


def _vae_prefixes(config: dict[str, Any]) -> dict[str, str]:
    """diffusers AutoencoderKL prefix -> LDM prefix (LDM numbers the decoder's levels bottom-up)."""
    levels = len(config["block_out_channels"])
    per_block = config["layers_per_block"]
    prefixes = {"encoder.conv_norm_out.": "encoder.norm_out.", "decoder.conv_norm_out.": "decoder.norm_out.",
                "encoder.conv_in.": "encoder.conv_in.", "encoder.conv_out.": "encoder.conv_out.",
                "decoder.conv_in.": "decoder.conv_in.", "decoder.conv_out.": "decoder.conv_out.",
                "quant_conv.": "quant_conv.", "post_quant_conv.": "post_quant_conv."}
    for part in ("encoder", "decoder"):
        prefixes[f"{part}.mid_block.attentions.0."] = f"{part}.mid.attn_1."
        for j in range(2):
            prefixes[f"{part}.mid_block.resnets.{j}."] = f"{part}.mid.block_{j + 1}."
    for i in range(levels):
        for j in range(per_block):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
        for j in range(per_block + 1):
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{levels - 1 - i}.block.{j}."
        if i < levels - 1:
            prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
            prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{levels - 1 - i}.upsample."
    return prefixes


VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def vae_to_ldm(weights: Tensors, config: dict[str, Any]) -> Tensors:
    """A diffusers AutoencoderKL state dict under `first_stage_model.*` names (attention as 1x1 convs)."""
    prefixes = _vae_prefixes(config)
    out: Tensors = {}
    for key, value in weights.items():
        name = _rename(key, prefixes, VAE_RESNET)
        if ".mid.attn_1." in name:
            head, _, rest = name.partition(".mid.attn_1.")
            for old, new in VAE_ATTENTION.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
            if value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
            name = f"{head}.mid.attn_1.{rest}"
        out["first_stage_model." + name] = value
    return out


def clip_to_ldm(weights: Tensors, prefix: str) -> Tensors:
    """OpenAI CLIP (transformers layout) under `prefix` (e.g. `cond_stage_model.transformer.`), with
    the position_ids buffer real checkpoints carry."""
    out = {prefix + k: v for k, v in _text_model_keys(weights).items()}
    positions = out[prefix + "text_model.embeddings.position_embedding.weight"].shape[0]
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(positions, dtype=torch.int64)[None]
    return out


OPEN_CLIP_LAYER = {"layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.", "mlp.fc1.": "mlp.c_fc.",
                   "mlp.fc2.": "mlp.c_proj.", "self_attn.out_proj.": "attn.out_proj."}


def open_clip_to_ldm(weights: Tensors, prefix: str) -> Tensors:
    """CLIPTextModelWithProjection in OpenCLIP's layout under `prefix` (`conditioner.embedders.1.model.`):
    resblocks with fused q/k/v in_proj, positional_embedding, ln_final, transposed text_projection."""
    weights = _text_model_keys(weights)
    out: Tensors = {
        "token_embedding.weight": weights.pop("text_model.embeddings.token_embedding.weight"),
        "positional_embedding": weights.pop("text_model.embeddings.position_embedding.weight"),
        "ln_final.weight": weights.pop("text_model.final_layer_norm.weight"),
        "ln_final.bias": weights.pop("text_model.final_layer_norm.bias"),
        "text_projection": weights.pop("text_projection.weight").T.contiguous(),
        "logit_scale": torch.tensor(4.6052, dtype=torch.float16),
    }
    layer_prefix = "text_model.encoder.layers."
    layers = {int(k[len(layer_prefix):].split(".")[0]) for k in weights if k.startswith(layer_prefix)}
    for n in sorted(layers):
        src, dst = f"{layer_prefix}{n}.", f"transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [weights.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"])
        for key in [k for k in weights if k.startswith(src)]:
            rest = key[len(src):]
            old = next(o for o in OPEN_CLIP_LAYER if rest.startswith(o))
            out[dst + OPEN_CLIP_LAYER[old] + rest[len(old):]] = weights.pop(key)
    if weights:
        raise KeyError(f"No OpenCLIP name for {sorted(weights)[:3]}")
    return {prefix + k: v for k, v in out.items()}


def ddpm_schedule() -> Tensors:
    """The DDPM buffers LDM's SD 1.x checkpoints carry (scaled-linear betas, 1000 steps)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - previous) / (1.0 - alphas_cumprod)
    buffers = {
        "betas": betas, "alphas_cumprod": alphas_cumprod, "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(), "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / alphas_cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": torch.log(posterior_variance.clamp(min=1e-20)),
        "posterior_mean_coef1": betas * previous.sqrt() / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - previous) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod),
    }
    return {k: v.float() for k, v in buffers.items()}


# -- writers ------------------------------------------------------------------------------------

def component_to_ldm(component: str, family: str, weights: Tensors, config: dict[str, Any]) -> Tensors:
    """`weights` of one component under its LDM (SD 1.x) or SGM (SDXL) names."""
    if component == "unet":
        return unet_to_ldm(weights, config)
    if component == "vae":
        return vae_to_ldm(weights, config)
    if component == "text_encoder":
        prefix = "cond_stage_model.transformer." if family == "sd15" else "conditioner.embedders.0.transformer."
        return clip_to_ldm(weights, prefix)
    return open_clip_to_ldm(weights, "conditioner.embedders.1.model.")


def _write(path: Path, family: str, configs: dict[str, dict[str, Any]], seed: int) -> Path:
    """Build every component at random, rename to LDM keys and save fp16 safetensors at `path`."""
    generator = torch.Generator().manual_seed(seed)
    state: Tensors = ddpm_schedule() if family == "sd15" else {}
    for component, config in configs.items():
        weights = _random_weights(_meta_model(component, config), generator)
        state.update(component_to_ldm(component, family, weights, config))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def ldm_key_names(family: str, *, small: bool = False) -> set[str]:
    """The tensor names a checkpoint of `family` holds, worked out on the meta device (nothing allocated)."""
    names = set(ddpm_schedule()) if family == "sd15" else set()
    for component, config in component_configs(family, small).items():
        names |= component_to_ldm(component, family, _meta_model(component, config).state_dict(), config).keys()
    return names


def write_sd15_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """A full-size SD 1.5 checkpoint (~1.07 B parameters, ~2.1 GB fp16) with random weights."""
    return _write(path, "sd15", component_configs("sd15"), seed)


def write_sdxl_checkpoint(path: Path, *, small: bool = False, inpainting: bool = False, seed: int = 0) -> Path:
    """An SDXL base checkpoint with random weights: full size (~3.5 B parameters, ~7 GB fp16), or
    with `small` the same keys at narrow widths (load it with write_small_sdxl_config's folder);
    `inpainting` as SDXL's inpainting checkpoints are (a UNet of 9 input channels)."""
    return _write(path, "sdxl", component_configs("sdxl", small, inpainting), seed)


WRITERS = {
    "sd15": (write_sd15_checkpoint, {}),
    "sdxl-small": (write_sdxl_checkpoint, {"small": True}),
    "sdxl-small-inpainting": (write_sdxl_checkpoint, {"small": True, "inpainting": True}),
    "sdxl": (write_sdxl_checkpoint, {}),
}


def _cache_key(kind: str) -> str:
    """CACHE_VERSION plus the configs the checkpoint is built from, hashed."""
    family, *variants = kind.split("-")
    configs = component_configs(family, "small" in variants, "inpainting" in variants)
    text = json.dumps([CACHE_VERSION, configs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_CHARS]


def cached_checkpoint(kind: str) -> Path:
    """The checkpoint `kind` ("sd15", "sdxl-small" or "sdxl"), built once into $GATOR_TEST_CACHE
    (default ~/.cache/gator-studio-tests) and reused while its writer and configs are unchanged."""
    if kind not in WRITERS:
        raise ValueError(f"Unknown checkpoint kind {kind!r}: use one of {', '.join(WRITERS)}.")
    cache = Path(os.environ.get("GATOR_TEST_CACHE") or Path.home() / ".cache" / "gator-studio-tests")
    path = cache / f"{kind}-{_cache_key(kind)}.safetensors"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{kind}.lock", "w") as lock:  # test processes running at once build each kind once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():  # another worker built it while this one waited
            return path
        for stale in cache.glob(f"{kind}-{'?' * KEY_CHARS}.safetensors"):  # an older build of this kind
            stale.unlink(missing_ok=True)
        writer, options = WRITERS[kind]
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        writer(partial, **options)
        os.replace(partial, path)
    return path
