"""Latent -> RGB previews: per-family factors as data, FLUX unpacking, cost per step."""
from __future__ import annotations

import torch

from engine.previews import latent_format, latents_to_preview, unpack_flux_latents


def test_factor_tables_have_one_row_per_channel():
    assert latent_format("sd15")[0].shape == (4, 3)
    assert latent_format("sdxl")[0].shape == (4, 3) and latent_format("sdxl")[1].abs().sum() > 0
    assert latent_format("flux")[0].shape == (16, 3)


def test_projection_matches_the_factors():
    latents = torch.zeros(1, 4, 2, 2)
    latents[0, 0] = 1.0  # only channel 0 lit: the pixel is row 0 of the factors
    r, g, b = latents_to_preview(latents, "sd15").getpixel((0, 0))
    expected = [(v + 1) * 127.5 for v in (0.3512, 0.2297, 0.3227)]
    assert all(abs(a - e) <= 1 for a, e in zip((r, g, b), expected))


def test_flux_packed_latents_unpack_to_16_channels():
    packed = torch.randn(1, (128 // 16) * (96 // 16), 64)  # 128x96 image, diffusers' packing
    unpacked = unpack_flux_latents(packed, height=128, width=96)
    assert unpacked.shape == (1, 16, 16, 12)
    assert latents_to_preview(unpacked, "flux").size == (12, 16)


def test_projection_copies_its_factors_to_the_latents_device_once_not_per_step():
    """A copy from ordinary host memory to a GPU waits for the GPU's queued work: one per step stalled every step
    (measured on an H100: previews cost 11-23 ms a step). The "meta" device stands for the GPU here."""
    from torch.overrides import TorchFunctionMode

    from engine.previews import _projected

    class HostToDevice(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.copies = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            if func is torch.Tensor.to and args[0].device.type == "cpu" and isinstance(result, torch.Tensor) \
                    and result.device.type == "meta":
                self.copies += 1
            return result

    latents = torch.randn(1, 4, 8, 8, device="meta")
    with HostToDevice() as counted:
        for _ in range(5):
            assert _projected(latents, "sd15").shape == (8, 8, 3)
    assert counted.copies <= 2  # the factors and the bias, once (none once cached by an earlier test)

class StreamClock:
    """A stand-in for the GPU's stream: events are recorded in order and finish when `run_to` says the stream got
    past them; `synchronize` on one that has not is counted as a wait (and finishes it, as the GPU would)."""

    def __init__(self):
        self.recorded, self.finished, self.waits = 0, 0, 0

    def run_to(self, count: int) -> None:
        self.finished = max(self.finished, count)

    def event(self):
        clock = self

        class Event:
            def record(self):
                clock.recorded += 1
                self.number = clock.recorded

            def query(self):
                return clock.finished >= self.number

            def synchronize(self):
                if not self.query():
                    clock.waits += 1
                    clock.run_to(self.number)

        return Event()


def test_deferred_previews_wait_only_beyond_the_lag_each_once_and_in_order():
    import numpy as np

    from engine.previews import PREVIEW_LAG_STEPS, StepPreviews

    assert PREVIEW_LAG_STEPS == 2  # the steps below are written for it
    latents = [torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(n)) for n in range(6)]
    stream = StreamClock()
    previews = StepPreviews("sdxl", deferred=True, make_event=stream.event)  # as on a GPU far behind the CPU
    arrived = [[step for step, _ in previews.add(n + 1, x)] for n, x in enumerate(latents[:4])]
    assert arrived == [[], [], [1], [2]] and stream.waits == 2  # the third copy in flight waits for the first
    stream.run_to(4)  # the GPU caught up: what finished comes at once, without waiting
    assert [step for step, _ in previews.add(5, latents[4])] == [3, 4] and stream.waits == 2
    assert [step for step, _ in previews.add(6, latents[5])] == []
    last = previews.flush()
    assert [step for step, _ in last] == [5, 6] and previews.flush() == [] and stream.waits == 4
    assert np.array_equal(np.asarray(last[-1][1]), np.asarray(latents_to_preview(latents[5], "sdxl")))

    at_once = StepPreviews("sdxl")  # CPU latents: ready in the step that made them
    assert [step for step, _ in at_once.add(1, latents[0])] == [1] and at_once.flush() == []


def test_a_skipped_decoder_step_keeps_its_place_behind_copies_in_flight():
    from engine.previews import StepPreviews

    stream, now = StreamClock(), [0.0]
    previews = StepPreviews("sd15", deferred=True, decode=lambda x: torch.zeros(3, 3, 3, dtype=torch.uint8),
                            period_s=0.5, clock=lambda: now[0], make_event=stream.event)
    latents = torch.zeros(1, 4, 3, 3)
    assert previews.add(1, latents) == []  # decoded; its copy in flight
    assert previews.add(2, latents) == []  # within the period: no preview, but not before step 1's
    stream.run_to(1)
    now[0] = 1.0  # a period later: decoded again, its copy in flight
    assert [(step, image is None) for step, image in previews.add(3, latents)] == [(1, False), (2, True)]
    assert [(step, image is None) for step, image in previews.flush()] == [(3, False)]


def test_a_decoders_previews_come_at_most_once_a_period_and_always_for_the_last_step(tmp_path):
    """TAESD costs 7 ms of an H100's time per 1024 px SDXL step (9-17 % of a step): its previews come at most once
    per period, the steps between report progress without a picture, and the last step always has one. The
    projection (0.2 ms) previews every step."""
    from engine.backends.preview_decoders import load_taesd
    from engine.previews import StepPreviews
    from tests.support.tiny_taesd import write_taesd_decoder

    write_taesd_decoder(tmp_path / "taesd_decoder.safetensors")
    taesd = load_taesd(tmp_path / "taesd_decoder.safetensors", "cpu", torch.float32)
    decoded = []

    def counted(latents):
        decoded.append(len(decoded))
        return taesd(latents)

    now = [0.0]
    previews = StepPreviews("sd15", deferred=False, decode=counted, period_s=0.5, clock=lambda: now[0])
    latents = torch.randn(1, 4, 4, 4)
    shown = []
    for step in range(1, 8):  # a step every 0.2 s
        shown += previews.add(step, latents, last=step == 7)
        now[0] += 0.2
    assert [(step, image is not None) for step, image in shown] == [
        (1, True), (2, False), (3, False), (4, True), (5, False), (6, False), (7, True)]
    assert len(decoded) == 3 and shown[-1][1].size == (32, 32)  # TAESD's picture: 8 pixels per latent

    every_step = StepPreviews("sd15", deferred=False, period_s=0.5, clock=lambda: 0.0)  # the projection
    assert all(image is not None for step in range(1, 4) for _, image in every_step.add(step, latents))
