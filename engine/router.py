"""The router: decides ONCE where a validated request runs (which backend, which model, which server) and
what to fall back to, and hands that plan to the backends. Backends never re-plan."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from .backends import auto_order
from .backends.base import INTERPOLATE, USER_WORKFLOW, Backend, Target
from .errors import BackendUnavailable, InvalidRequest
from .registry import ModelSpec
from .request import GenerationRequest
from .upscale import upscaler_named

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Targets in order (the first choice, then what auto mode falls back to), and why a backend that would
    have come first was passed over (the result's `fallback_reason`)."""

    targets: tuple[Target, ...]
    skipped: str | None = None


class Router:
    """Plans requests over `backends` (highest priority first; the `local` one is auto's last resort)."""

    def __init__(self, backends: Sequence[Backend]) -> None:
        self.backends = auto_order(backends)
        self.by_name = {b.name: b for b in self.backends}
        local = [b for b in self.backends if b.local]
        if not local:
            raise ValueError("No local backend is registered: auto mode needs one to fall back to.")
        self.last_resort = local[0]

    def names(self) -> list[str]:
        return [b.name for b in self.backends]

    def plan(self, req: GenerationRequest) -> Plan:
        """The plan for `req`. Raises InvalidRequest (an impossible request) or BackendUnavailable (a forced
        backend that cannot run it now)."""
        needs = _needed_features(req)
        forced = self.by_name.get(req.backend)
        if forced is not None and not needs <= forced.features:
            missing = ", ".join(FEATURES[name] for name in sorted(needs - forced.features))
            raise InvalidRequest(f"{forced.label} cannot make {missing}.")
        candidates = [b for b in self.backends if needs <= b.features]
        model_id = req.model if req.model and req.model.lower() != "auto" else None
        if model_id is None:
            if forced is not None:
                return _logged(Plan((self._plan_on(forced, req, None),)))
            return self._first_that_runs(req, [(b, None) for b in candidates if not b.local])
        owners = [(b, b.find(model_id)) for b in candidates]
        owners = [(b, spec) for b, spec in owners if spec is not None]
        if not owners:
            raise InvalidRequest(self.unknown_model(model_id, candidates))
        if forced is not None:
            spec = forced.find(model_id)
            if spec is None:
                owner, owned = owners[0]
                raise InvalidRequest(f"{owned.label} runs on {owner.label}, not {forced.label}; choose backend auto "
                                     f"or {owner.name}, or a {forced.label} model.")
            return _logged(Plan((self._plan_on(forced, req, spec),)))
        return self._first_that_runs(req, owners)

    def unknown_model(self, model_id: str, backends: Sequence[Backend] | None = None) -> str | None:
        """The sentence for a model name none of `backends` (all of them) knows; None for a known one or auto."""
        backends = self.backends if backends is None else backends
        if not model_id or model_id.strip().lower() == "auto" or any(b.find(model_id.strip()) is not None for b in backends):
            return None
        known = ", ".join(m.id for b in backends for m in b.models())
        return f"Unknown model {model_id!r}. Available models: {known}."

    @staticmethod
    def _plan_on(backend: Backend, req: GenerationRequest, spec) -> Target:
        why = backend.why_not(spec)
        if why:
            raise BackendUnavailable(why)
        return backend.plan(req, spec)

    def plan_upscale(self, upscaler: str, *, local_first: bool = False, local_only: bool = False) -> tuple[Backend, ...]:
        """The backends that have the model upscaler `upscaler`, in the order to try them: auto's (a ComfyUI server
        that lists it first, this machine's file as the fallback), or this machine first with `local_first` (the
        hires fix's upscale between its passes: no upload when the file is here); this machine only with
        `local_only` (a request forced onto the local backend). InvalidRequest when none has it."""
        owners = [b for b in self.backends if upscaler_named(upscaler, b.upscalers())]
        if local_first:
            owners.sort(key=lambda b: not b.local)
        if local_only and not any(b.local for b in owners):
            where = ", ".join(b.label for b in owners) or "no backend"
            raise InvalidRequest(f"The upscaler {upscaler!r} is on {where} only, and this request runs on "
                                 f"{self.last_resort.label}: choose backend auto, or another upscaler.")
        owners = [b for b in owners if b.local] if local_only else owners
        if not owners:
            raise InvalidRequest(f"No backend has the upscaler {upscaler!r} now.")
        logger.debug("Upscale plan for %s: %s", upscaler, " -> ".join(b.name for b in owners))
        return tuple(owners)

    def default_choice(self) -> tuple[Backend, Backend | None]:
        """The backend a default request runs on now (auto, no model), and the enabled backend that would
        have come first but cannot run now (None when none was passed over). Plans nothing."""
        passed_over = None
        for backend in self.backends:
            if backend.local:
                break
            if backend.why_not(None) is None and backend.default_model() is not None:
                return backend, passed_over
            if backend.enabled and passed_over is None:
                passed_over = backend
        return self.last_resort, passed_over

    def _fallback(self, req: GenerationRequest, spec: ModelSpec | None) -> Target | None:
        """The local target behind a remote one: `spec` when it can run here, else the local default; None
        when the local backend cannot take the request at all (e.g. a LoRA only the remote one has)."""
        for candidate in ((spec, None) if spec is not None else (None,)):
            try:
                return self.last_resort.plan(req, candidate)
            except (InvalidRequest, BackendUnavailable):
                continue
        return None

    def _first_that_runs(self, req: GenerationRequest, options: list) -> Plan:
        """The first (backend, model) that runs now, then the local backend (unless the request needs what it
        lacks: then BackendUnavailable); the first reason a wanted backend was passed over is kept."""
        needs = _needed_features(req)
        skipped: str | None = None
        local_spec = next((spec for backend, spec in options if backend is self.last_resort), None)
        for backend, spec in options:
            why = backend.why_not(spec)
            if why is None:
                try:
                    first = backend.plan(req, spec)
                except BackendUnavailable as err:
                    skipped = skipped or str(err)
                    continue
                if backend.local:
                    return _logged(Plan((first,), skipped))
                # the fallback runs the same model locally when the local backend has it too (and can run it at all)
                fallback = self._fallback(req, local_spec) if needs <= self.last_resort.features else None
                return _logged(Plan((first, fallback) if fallback else (first,), skipped))
            if backend.enabled:
                skipped = skipped or why
        if not needs <= self.last_resort.features:  # e.g. a user workflow: ComfyUI only, never this machine
            wanted = ", ".join(FEATURES[name] for name in sorted(needs - self.last_resort.features))
            able = " or ".join(b.label for b in self.backends if needs <= b.features) or "another backend"
            raise BackendUnavailable(f"{skipped or 'No backend that can run it is enabled.'} {wanted.capitalize()} "
                                     f"run only on {able}, so this request is not run on this machine "
                                     f"({self.last_resort.label}).")
        return _logged(Plan((self.last_resort.plan(req, None),), skipped))


def _logged(plan: Plan) -> Plan:
    logger.debug("Plan: %s%s", " -> ".join(f"{t.backend}:{t.model.id}" + (f"@{t.server}" if t.server else "")
                                           for t in plan.targets),
                 f" (passed over: {plan.skipped})" if plan.skipped else "")
    return plan


FEATURES = {INTERPOLATE: "seed-travel in-betweens",  # what a request's `extra` may ask of a backend
            USER_WORKFLOW: "your own ComfyUI workflows"}  # ... and what its user_workflow asks


def _needed_features(req: GenerationRequest) -> frozenset[str]:
    needs = {name for name in FEATURES if req.extra.get(name)}
    return frozenset(needs | ({USER_WORKFLOW} if req.user_workflow else set()))
