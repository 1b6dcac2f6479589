"""The model dropdown: "auto" plus the models actually available now, and each one's defaults."""
from __future__ import annotations

from typing import Any

from engine.registry import find_model

AUTO = "auto"
FALLBACK_DEFAULTS = {"width": 512, "height": 512, "steps": 20, "guidance": 7.0}


def model_choices(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, id) pairs for the dropdown: auto, ComfyUI models (marked), then available local models."""
    choices = [("auto (best available)", AUTO)]
    seen = {AUTO}
    for m in models:
        if not m.get("available") or m.get("id") in seen:
            continue
        seen.add(m["id"])
        where = "ComfyUI" if m.get("engine") == "comfyui" else "local diffusers"
        choices.append((f"{m.get('label') or m['id']} · {where}", str(m["id"])))
    return choices


def choices_key(choices: list[tuple[str, str]]) -> str:
    return "|".join(value for _, value in choices)


def model_defaults(manager: Any, model_id: str | None) -> dict[str, Any]:
    """Width, height, steps and guidance a request for `model_id` ("auto": what auto picks now) starts from."""
    model_id = (model_id or AUTO).strip()
    entry: dict[str, Any] | None = None
    if model_id == AUTO:
        active = manager.active_backend() if getattr(manager, "hardware", None) else {}
        if active.get("backend") == "comfyui":
            entry = next(iter(manager.comfyui_models()), None)
        else:
            spec = manager.best_local() if getattr(manager, "hardware", None) else None
            if spec is not None:
                return _from_spec(spec)
    else:
        entry = next((m for m in manager.available_models() if m.get("id") == model_id), None)
        spec = find_model(model_id)
        if spec is not None and (entry is None or entry.get("engine") != "comfyui" or "default_steps" not in entry):
            return _from_spec(spec)
    if entry:
        side = int(entry.get("native_size") or FALLBACK_DEFAULTS["width"])
        guidance = entry.get("default_guidance")
        return {"width": side, "height": side, "steps": int(entry.get("default_steps") or 20),
                "guidance": float(guidance) if guidance is not None else FALLBACK_DEFAULTS["guidance"]}
    return dict(FALLBACK_DEFAULTS)


def _from_spec(spec: Any) -> dict[str, Any]:
    return {"width": int(spec.native_size), "height": int(spec.native_size), "steps": int(spec.default_steps),
            "guidance": float(spec.default_guidance)}
