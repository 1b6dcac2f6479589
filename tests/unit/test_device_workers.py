"""Several local GPUs: which devices get a worker (GATOR_DEVICES, probed GPUs) and how requests are spread over the
workers; fake devices (four "GPUs" on this CPU machine), the real pool and its real locks."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from engine import registry
from engine.backends.device_workers import WorkerPool, pick_worker, worker_names
from engine.config import Settings
from engine.registry import Hardware, local_devices

CPU = Hardware("cpu", "CPU", 0.0, 64.0)


def fake_gpus(count: int) -> list[Hardware]:
    return [Hardware("cuda", f"Fake GPU {i}", 24.0, 64.0, index=i) for i in range(count)]


@pytest.fixture
def four_gpus(monkeypatch):
    """torch reports four CUDA GPUs (only their count and properties are read when listing devices)."""
    import torch

    monkeypatch.setattr(registry, "cuda_device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(name=f"Fake GPU {index}", total_memory=(16 + index) * 1024**3))
    return Hardware("cuda", "Fake GPU 0", 16.0, 64.0)


def test_every_gpu_gets_a_worker_unless_gator_devices_lists_some(four_gpus):
    every = local_devices("", four_gpus)
    assert [d.torch_device for d in every] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert [d.vram_gb for d in every] == [16.0, 17.0, 18.0, 19.0] and every[3].device_name == "Fake GPU 3"
    chosen = local_devices("cuda:1, cuda:3", four_gpus)
    assert [d.torch_device for d in chosen] == ["cuda:1", "cuda:3"] and chosen[1].vram_gb == 19.0
    assert [d.torch_device for d in local_devices("cuda:2,cuda:7", four_gpus)] == ["cuda:2"]  # no cuda:7 here


def test_one_gpu_or_none_keeps_the_single_probed_device(monkeypatch):
    monkeypatch.setattr(registry, "cuda_device_count", lambda: 1)
    one = Hardware("cuda", "Only GPU", 24.0, 64.0)
    assert local_devices("", one) == [one] and one.torch_device == "cuda"
    assert local_devices("", CPU) == [CPU]
    two_cpu = local_devices("cpu,cpu", CPU)
    assert [d.device for d in two_cpu] == ["cpu", "cpu"] and worker_names(two_cpu) == ["cpu #1", "cpu #2"]
    monkeypatch.setattr(registry, "cuda_device_count", lambda: 0)
    assert local_devices("cuda:0", CPU) == [CPU]  # no GPU at all: the machine's own device, with a warning


def test_gator_devices_that_names_no_device_is_a_sentence(monkeypatch):
    monkeypatch.setenv("GATOR_DEVICES", "cuda:0,gpu1")
    with pytest.raises(ValueError, match=r"GATOR_DEVICES .* cpu, mps, cuda or cuda:N \(got 'gpu1'\)"):
        Settings.from_env()
    monkeypatch.setenv("GATOR_DEVICES", " CUDA:0 , cuda:1 ")
    assert Settings.from_env().devices == "cuda:0 , cuda:1"


def test_requests_go_to_the_least_busy_worker_and_idle_ones_take_turns():
    pool = WorkerPool(fake_gpus(3))
    assert worker_names(fake_gpus(3)) == ["cuda:0", "cuda:1", "cuda:2"]
    first, second, third = pool.claim("sdxl"), pool.claim("sdxl"), pool.claim("sdxl")
    assert [first.name, second.name, third.name] == ["cuda:0", "cuda:1", "cuda:2"]  # spread, not stacked
    assert pool.claim("sdxl").name == "cuda:0"  # all equally busy: the first again (it waits there)
    assert [w.load() for w in pool] == [2, 1, 1]


def test_a_worker_with_the_model_loaded_is_preferred_among_equally_busy_ones():
    pool = WorkerPool(fake_gpus(3))
    pool[1].pipe_key = ("sd15", "/models/sd15")
    pool[2].pipe_key = ("sdxl", "/models/sdxl")
    assert pool.claim("sdxl").name == "cuda:2" and pool.claim("sd15").name == "cuda:1"
    assert pool.claim("flux").name == "cuda:0"
    assert pool.claim("sdxl").name == "cuda:2"  # every worker has one job: the loaded model breaks the tie
    assert pool.claim("tiny").name == "cuda:0"  # then the one that started the fewest, by order


def test_a_busy_worker_is_passed_over_until_it_finishes_and_jobs_are_counted():
    pool = WorkerPool(fake_gpus(2))
    pool[0].pipe_key = ("sdxl", "/models/sdxl")
    running, go = threading.Event(), threading.Event()

    def job(worker):
        with worker.running():
            running.set()
            go.wait(10)

    worker = pool.claim("sdxl")
    thread = threading.Thread(target=job, args=(worker,))
    thread.start()
    assert running.wait(10) and worker.name == "cuda:0" and worker.busy and worker.waiting == 0
    assert pool.claim("sdxl").name == "cuda:1"  # the model is loaded on cuda:0, but cuda:0 is busy
    assert pool.snapshot()[0]["state"] == "running" and pool.snapshot()[1]["state"] == "idle, 1 waiting"
    go.set()
    thread.join(10)
    assert not worker.busy and worker.done == 1 and pool.snapshot()[0]["jobs_done"] == 1
    assert pick_worker(pool.workers, "sdxl") == 0  # idle again, with the model: it takes the next one
