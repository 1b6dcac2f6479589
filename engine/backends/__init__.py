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


def build_backends(context: BackendContext) -> list[Backend]:
    """Every registered backend, in the order auto mode tries them."""
    built = []
    for name, factory in _FACTORIES.items():
        backend = factory(context)
        logger.info("Backend %s: %s", name, backend.state().summary)
        built.append(backend)
    return auto_order(built)


def auto_order(backends: list[Backend]) -> list[Backend]:
    """The order auto mode tries backends in: remote ones by priority, then the local one(s)."""
    return sorted(backends, key=lambda b: (b.local, -b.priority))


def _register_builtin() -> None:
    from . import comfyui, diffusers  # noqa: F401  (each registers itself)


_register_builtin()

__all__ = ["Backend", "BackendContext", "BackendState", "Target", "register_backend", "unregister_backend",
           "build_backends", "auto_order"]
