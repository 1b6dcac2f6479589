"""Backends: one module each, registered by name. Adding one (a hosted API, say) is a new module that calls
`register_backend` plus its models; the router, the badge and the status tab pick it up."""
from __future__ import annotations

import logging
from typing import Callable

from .base import Backend, BackendContext, BackendState, Target

logger = logging.getLogger(__name__)

Factory = Callable[[BackendContext], Backend]
_FACTORIES: dict[str, Factory] = {}


def register_backend(name: str, factory: Factory) -> None:
    """Make `factory(context) -> Backend` part of every manager built from now on."""
    _FACTORIES[name] = factory


def unregister_backend(name: str) -> None:
    _FACTORIES.pop(name, None)


PREFER_LOCAL = "local"  # GATOR_PREFER / --prefer: this machine's backend first


def prefer_choices() -> list[str]:
    """What GATOR_PREFER and --prefer accept: local (this machine) or a registered backend's name."""
    return [PREFER_LOCAL, *_FACTORIES]


def build_backends(context: BackendContext) -> list[Backend]:
    """Every registered backend, in the order auto mode tries them (GATOR_PREFER's choice first)."""
    built = []
    for name, factory in _FACTORIES.items():
        backend = factory(context)
        logger.info("Backend %s: %s", name, backend.state().summary)
        built.append(backend)
    return auto_order(built, context.settings.prefer)


def auto_order(backends: list[Backend], prefer: str = "") -> list[Backend]:
    """The order auto mode tries backends in: remote ones by priority, then the local one(s), then the last
    resorts (`after_local`, the cloud); `prefer` (local, or a backend's name) moves that backend to the front.
    Raises ValueError naming the choices for a `prefer` that is none of them."""
    order = sorted(backends, key=lambda b: (b.after_local, b.local, -b.priority))
    prefer = (prefer or "").strip().lower()
    if not prefer:
        return order
    chosen = [b for b in order if (b.local if prefer == PREFER_LOCAL else b.name == prefer)]
    if not chosen:
        names = ", ".join([PREFER_LOCAL, *(b.name for b in order)])
        raise ValueError(f"GATOR_PREFER (--prefer) must be one of {names} (got {prefer!r}).")
    return chosen + [b for b in order if b not in chosen]


def _register_builtin() -> None:
    from . import cloud, comfyui, diffusers  # noqa: F401  (each registers itself)


_register_builtin()

__all__ = ["Backend", "BackendContext", "BackendState", "Target", "register_backend", "unregister_backend",
           "build_backends", "auto_order",
           "prefer_choices", "PREFER_LOCAL"]
