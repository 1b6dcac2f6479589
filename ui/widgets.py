"""Widget arguments from the parameter schema: a parameter's range, step, label, help and value, declared once
in engine/params.py and read here for every tab."""
from __future__ import annotations

from typing import Any

from engine import params as P


def widget(param: P.Param, value: Any = None) -> dict[str, Any]:
    """A widget's range, step, label, help and value, as the parameter schema declares them."""
    args = param.widget()
    if value is not None:
        args["value"] = value
    return args


def number_box(param: P.Param, value: Any = None) -> dict[str, Any]:
    """A number box: as `widget`, but out-of-range values reach the engine, whose sentence says what to fix
    (the range is in the help text)."""
    args = widget(param, value)
    low, high = args.pop("minimum", None), args.pop("maximum", None)
    if high is not None and P.number_text(high) not in args.get("info", ""):
        args["info"] = f"{args.get('info', '')} ({P.number_text(low)} to {P.number_text(high)})".strip()
    return args


def preset_box(param: P.Param, label: str) -> dict[str, Any]:
    """A number box left empty (Gradio shows it as 0) or at 0 to take a preset's value: `number_box` with no value
    and a label saying so."""
    return {**number_box(param), "value": None, "label": label}
