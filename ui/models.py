"""The model dropdown: "auto" plus the models actually available now."""
from __future__ import annotations

from typing import Any

from engine.params import NO_CONTROLNET, SAME_CHECKPOINT
from engine.request import AUTO


def model_choices(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, id) pairs for the dropdown: auto, then every available model marked with its backend and its
    license."""
    choices = [("auto (best available)", AUTO)]
    seen = {AUTO}
    for m in models:
        if not m.get("available") or m.get("id") in seen:
            continue
        seen.add(m["id"])
        choices.append((f"{m.get('label') or m['id']} · {m.get('backend_label') or m.get('backend')} · "
                        f"{license_text(m.get('license'))}", str(m["id"])))
    return choices


def hires_checkpoint_choices(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, id) pairs for the hires checkpoint: the first pass's own ("Use same checkpoint"), then the models."""
    return [(SAME_CHECKPOINT, SAME_CHECKPOINT), *model_choices(models)[1:]]


def license_text(license: str | None) -> str:
    """A model's license as the picker and the status tab show it ("license unknown" when nothing says)."""
    return license if license and license != "unknown" else "license unknown"


def choices_key(choices: list[tuple[str, str]]) -> str:
    return "|".join(value for _, value in choices)


def vae_choices(vaes: list[str]) -> list[tuple[str, str]]:
    """(label, name) pairs for the VAE choice: the checkpoint's own first."""
    return [("auto (built in)", AUTO), *((name, name) for name in vaes)]  # the checkpoint's own VAE


def lora_choices(loras: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, name) pairs for the LoRA picker: each LoRA with its family."""
    return [(f"{entry['name']} · {entry.get('family_label') or 'unknown family'}", str(entry["name"]))
            for entry in loras]


def controlnet_choices(controlnets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, name) pairs for the ControlNet choice: none first, then each ControlNet with its family."""
    return [(NO_CONTROLNET, NO_CONTROLNET), *lora_choices(controlnets)]
