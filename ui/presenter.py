"""Engine events as the progress line of the Image and Video tabs: every event's text is written here once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.events import Done, Failed, Fallback, ListLine, PlotCell, Progress, Queued, Skipped, Started
from engine.video import VideoProgress

STOPPED = "Stopped."


def failure_line(message: str) -> str:
    """The progress line of a run that ended without its result."""
    return f"Failed: {message}"


def unexpected_failure(err: BaseException) -> str:
    """The sentence for an error nobody planned for: its kind only, the details stay in the server log."""
    return f"Something went wrong ({type(err).__name__}); the server log has the details."


def batch_label(index: int, count: int) -> str:
    """The label of image `index` (from 0) of a batch: "Image 2/3"; empty for a single image."""
    return f"Image {index + 1}/{count}" if count > 1 else ""


def cell_label(event: PlotCell | ListLine) -> str:
    """The label of an X/Y/Z plot's cell ("Cell 3/4") or of a prompt list's prompt ("Prompt 2/5")."""
    return f"{'Prompt' if isinstance(event, ListLine) else 'Cell'} {event.number}/{event.total}"


def is_stopped(event: Failed) -> bool:
    """True when a Failed event is the end of a Stop, not an error."""
    return event.error.startswith("Cancelled") or (event.result or {}).get("status") == "cancelled"


def _join(*parts: Any) -> str:
    """The parts that are set, joined by " · "."""
    return " · ".join(str(part) for part in parts if part)


def _line(*parts: Any) -> str:
    """A progress line: the parts that are set, joined by " · ", beginning with a capital letter."""
    text = _join(*parts)
    return text[:1].upper() + text[1:]


@dataclass
class Presenter:
    """The progress line of one run, and the backend and model that run it now (from Started, Fallback and
    Progress). `label` leads every line ("Image 2/3"); with `video` a Progress is a finished keyframe and
    Done a finished video."""

    label: str = ""
    video: bool = False
    stage: str = ""  # the pass whose steps are shown ("Hires fix")
    backend: str | None = None
    model: str | None = None
    reached: int = 0  # the highest step shown for the image (or keyframe) being made now
    held: bool = False  # the image restarted: its steps are not shown until they pass `reached`
    fallback: str | None = None  # the reason of that restart's Fallback, kept in view meanwhile

    @property
    def where(self) -> str:
        """ "diffusers · Tiny demo model": what runs now, as far as the events said."""
        return _join(self.backend, self.model)

    def note(self, event: Any) -> None:
        """Remember the backend and model `event` names."""
        if isinstance(event, Started):
            self.backend, self.model = event.backend, event.model
        elif isinstance(event, Progress) and event.backend:
            self.backend = event.backend
        elif isinstance(event, Fallback):
            self.backend = event.to_backend

    def line(self, event: Any) -> str | None:
        """Note `event`, then its progress line (None for an event that changes nothing visible).

        After a Fallback the line keeps its reason until the next backend's steps pass the highest step
        shown, so the step counter of one image never goes backwards."""
        self.note(event)
        if isinstance(event, (PlotCell, ListLine)):  # a new image: its lines lead with the cell, steps count from 1
            self.label, self.stage, self.reached, self.held, self.fallback = cell_label(event), "", 0, False, None
            return _line(self.label, event.label)
        if isinstance(event, Queued):
            where = self.backend or "backend"
            return _line(self.label, f"Waiting for the {where}: position {event.position} in line")
        if isinstance(event, Started):
            if self.fallback is not None:
                return self._fallback_line(self.where)
            if event.stage != self.stage:  # the next pass of the same image (the hires fix), not a takeover
                self.stage, self.reached, self.held = event.stage, 0, False
            again = self.reached > 0  # the same image again: another server took it over
            self.held = self.held or again
            return _line(self.label, event.stage, f"Started on {self.where}" + (" again" if again else ""))
        if isinstance(event, Fallback):
            self.fallback, self.held = event.reason, True
            return self._fallback_line(event.to_backend)
        if isinstance(event, VideoProgress):
            if event.phase == "denoising":
                if not self._advance(event.done):
                    return None
                return _line(self.label, event.message, f"step {event.done}/{event.total}", self.where)
            return _line(self.label, event.message, f"frame {event.done}/{event.total}")
        if isinstance(event, Progress):
            if self.video:
                self.reached, self.held, self.fallback = 0, False, None  # the next keyframe counts from 0
                return _line(self.label, f"Keyframe {event.step}/{event.total} done", event.backend)
            if event.stage != self.stage:  # a new pass counts its steps from 1
                self.stage, self.reached, self.held = event.stage, 0, False
            if not self._advance(event.step):
                return None
            return _line(self.label, event.stage, f"Step {event.step}/{event.total}", self.where)
        if isinstance(event, Done):
            return self._done(event.result)
        if isinstance(event, Skipped):
            return _line(self.label, "skipped" + (", on to the next" if event.number < event.total else ""))
        if isinstance(event, Failed):
            if is_stopped(event):
                return f"{STOPPED} {event.error.removeprefix('Cancelled:').strip()}".strip()
            return failure_line(event.error)
        return None

    def _fallback_line(self, where: str) -> str:
        return _line(self.label, f"Warning: {self.fallback} Continuing on {where}.")

    def _advance(self, step: int) -> bool:
        """True when `step` may be shown: no restart is held, or it passed every step shown before."""
        if self.held and step <= self.reached:
            return False
        self.held, self.fallback = False, None
        self.reached = max(self.reached, step)
        return True

    def _done(self, result: dict[str, Any]) -> str:
        took = (result.get("timings") or {}).get("total_s")
        took = took if isinstance(took, (int, float)) else None
        if self.video:
            return _line(self.label, f"Video ready: {result.get('frames')} frames, {result.get('duration_s')} s"
                                     + (f" in {took:.1f} s" if took is not None else ""))
        if result.get("plot"):
            return _line(f"X/Y/Z plot done: {len(result.get('batch') or [])} images and their grid"
                         + (f" in {took:.1f} s" if took is not None else ""))
        return _line(self.label, "Done" + (f" in {took:.2f} s" if took is not None else ""),
                     result.get("backend"), result.get("model"), f"seed {result.get('seed')}")
