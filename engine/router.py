"""The router: decides ONCE where a validated request runs (which backend, which model, which server) and
what to fall back to, and hands that plan to the backends. Backends never re-plan."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from .backends import auto_order
from .backends.base import INTERPOLATE, TILING, USER_WORKFLOW, VARIATION, Backend, Target
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
    """Plans requests over `backends` in auto's order (engine/backends/__init__.py `auto_order`: remote ones, this
    machine, then the cloud; GATOR_PREFER's choice first). The `local` backend is the last resort of a request
    that names a model this machine does not have."""

    def __init__(self, backends: Sequence[Backend], prefer: str = "") -> None:
        self.backends = auto_order(list(backends), prefer)
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
            return self._first_that_runs(req, [(b, None) for b in candidates])
        owners = [(b, b.find(model_id)) for b in candidates]
        owners = [(b, spec) for b, spec in owners if spec is not None]
        if not owners:
            unable = next((b for b in self.backends if b.find(model_id) is not None), None)
            if unable is not None:  # the model is known, on a backend that cannot do what the request asks
                missing = ", ".join(FEATURES[name] for name in sorted(needs - unable.features))
                raise InvalidRequest(f"{unable.find(model_id).label} runs on {unable.label}, which cannot make "
                                     f"{missing}.")
            raise InvalidRequest(self.unknown_model(model_id, candidates))
        if forced is not None:
            spec = forced.find(model_id)
            if spec is None:
                owner, owned = owners[0]
                raise InvalidRequest(f"{owned.label} runs on {owner.label}, not {forced.label}; choose backend auto "
                                     f"or {owner.name}, or a {forced.label} model.")
            return _logged(Plan((self._plan_on(forced, req, spec),)))
        if not any(b.local for b, _ in owners) and needs <= self.last_resort.features:  # its default model: last resort
            owners.append((self.last_resort, None))
        return self._first_that_runs(req, owners)

    def ahead_of_local(self) -> list[Backend]:
        """The backends auto mode tries before this machine's."""
        return self.backends[:self.backends.index(self.last_resort)]

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
            if backend.why_not(None) is None and backend.default_model() is not None:
                return backend, passed_over
            if backend.enabled and passed_over is None:
                passed_over = backend
        return self.last_resort, passed_over

    def _fallbacks(self, req: GenerationRequest, options: list) -> list[Target]:
        """The targets behind the first choice, in order: each later (backend, model) that can take the request
        now (the local one: the same model when it has it, else its default); those that cannot are left out."""
        targets = []
        for backend, spec in options:
            if not backend.enabled or backend.why_not(spec) is not None:
                continue
            for candidate in ((spec, None) if backend.local and spec is not None else (spec,)):
                try:
                    targets.append(backend.plan(req, candidate))
                    break
                except (InvalidRequest, BackendUnavailable):
                    continue
        return targets

    def _first_that_runs(self, req: GenerationRequest, options: list) -> Plan:
        """The first (backend, model) of `options` that runs now, then the fallbacks behind it; the first reason
        a wanted backend was passed over is kept. Raises the first refusal (InvalidRequest) or reason
        (BackendUnavailable) when none runs; a request that needs what this machine lacks (a user workflow) says
        so rather than running here."""
        needs = _needed_features(req)
        skipped: str | None = None
        refused: InvalidRequest | None = None
        for index, (backend, spec) in enumerate(options):
            why = backend.why_not(spec)
            if why is None:
                try:
                    first = backend.plan(req, spec)
                except BackendUnavailable as err:
                    skipped = skipped or str(err)
                    continue
                except InvalidRequest as err:  # e.g. a LoRA this backend lacks: the next one may have it
                    refused = refused or err
                    skipped = skipped or str(err)
                    continue
                return _logged(Plan((first, *self._fallbacks(req, options[index + 1:])), skipped))
            if backend.enabled:
                skipped = skipped or why
        if refused is not None:
            raise refused
        if not needs <= self.last_resort.features:  # e.g. a user workflow: ComfyUI only, never this machine
            wanted = ", ".join(FEATURES[name] for name in sorted(needs - self.last_resort.features))
            able = " or ".join(b.label for b in self.backends if needs <= b.features) or "another backend"
            raise BackendUnavailable(f"{skipped or 'No backend that can run it is enabled.'} {wanted.capitalize()} "
                                     f"run only on {able}, so this request is not run on this machine "
                                     f"({self.last_resort.label}).")
        raise BackendUnavailable(skipped or "No backend can run this request now.")


def _logged(plan: Plan) -> Plan:
    logger.debug("Plan: %s%s", " -> ".join(f"{t.backend}:{t.model.id}" + (f"@{t.server}" if t.server else "")
                                           for t in plan.targets),
                 f" (passed over: {plan.skipped})" if plan.skipped else "")
    return plan


FEATURES = {INTERPOLATE: "seed-travel in-betweens",  # what a request's `extra` may ask of a backend
            USER_WORKFLOW: "your own ComfyUI workflows",  # ... what its user_workflow asks
            VARIATION: "variation seeds",  # ... its variation strength
            TILING: "seamless (tiling) images"}  # ... and its tiling


def _needed_features(req: GenerationRequest) -> frozenset[str]:
    needs = {name for name in (INTERPOLATE,) if req.extra.get(name)}
    return frozenset(needs | ({USER_WORKFLOW} if req.user_workflow else set()) | ({VARIATION} if req.varies else set())
                     | ({TILING} if req.tiling else set()))
