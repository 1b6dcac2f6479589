"""Pool scaling: images/s through AIModelManager with 1, 2 and 4 fake ComfyUI servers.

Each fake runs in a process of its own (as real servers do) and runs one prompt at a time with a fixed service time (steps x step_delay_s). With N
servers, N clients each send requests back to back (closed loop) through one AIModelManager whose
COMFYUI_API_URL lists all N servers; throughput is images finished / wall time. Pool sizes are
measured in alternation (rounds), so drift on the shared machine hits them all alike.
Target: throughput(N) >= 0.9 x N x throughput(1).
Run: .venv/bin/python bench/pool_scaling.py [--rounds 5] [--per-client 8] [--size 64 --preview 64]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import socket
import statistics
import subprocess
import sys
import time

import httpx

from common import CPU, ROOT, row, tiny_settings

from engine.manager import AIModelManager

POOLS = (1, 2, 4)


async def batch(manager: AIModelManager, clients: int, per_client: int, seeds, **kwargs) -> tuple[float, list[str]]:
    """Wall time for `clients` concurrent clients to get `per_client` images each, and the servers used."""
    servers: list[str] = []

    async def client() -> None:
        for _ in range(per_client):
            result = await manager.generate_image("a tide pool at noon", seed=next(seeds), backend="comfyui", **kwargs)
            assert result["status"] == "success" and result["backend"] == "comfyui", result["error"]
            servers.append(result["server"])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, servers


def start_fakes(count: int, step_delay: float, preview: int) -> tuple[list[str], list[subprocess.Popen]]:
    """Fake ComfyUI servers, each in a process of its own like real servers (so they do not share our GIL)."""
    urls, procs = [], []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_comfyui", "--port", str(port), "--step-delay", str(step_delay),
             "--preview-size", str(preview)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/system_stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return urls, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-client", type=int, default=8, help="images each client asks for, per round")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-delay", type=float, default=0.015)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--preview", type=int, default=64, help="the fakes' preview size (px)")
    parser.add_argument("--interval", type=float, default=2.0, help="health poll interval (s)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    urls, procs = start_fakes(max(POOLS), args.step_delay, args.preview)
    loop = asyncio.new_event_loop()
    cases = [(str(n), n) for n in POOLS]
    managers: dict[str, AIModelManager] = {}
    for name, n in cases:
        m = AIModelManager(tiny_settings(comfyui_urls=urls[:n], enable_comfyui=True,
                                         health_interval_s=args.interval), hardware=CPU)
        loop.run_until_complete(m.initialize_models())
        assert len(m.backends["comfyui"].monitor.up_servers()) == n
        managers[name] = m
    seeds = itertools.count(1)
    kwargs = dict(width=args.size, height=args.size, num_inference_steps=args.steps)
    for name, n in cases:  # warm-up
        loop.run_until_complete(batch(managers[name], n, 1, seeds, **kwargs))

    rates: dict[str, list[float]] = {name: [] for name, _ in cases}
    shares: dict[str, list[int]] = {name: [0] * n for name, n in cases}
    for r in range(args.rounds):
        for name, n in (cases if r % 2 == 0 else cases[::-1]):
            wall, used = loop.run_until_complete(batch(managers[name], n, args.per_client, seeds, **kwargs))
            rates[name].append(n * args.per_client / wall)
            for i, url in enumerate(urls[:n]):
                shares[name][i] += used.count(url)

    service = args.steps * args.step_delay
    print(f"<!-- {args.size}x{args.size} images, {args.preview} px previews, service {args.steps} x "
          f"{args.step_delay * 1000:g} ms per image (ideal {1 / service:.2f} images/s per server); {args.rounds} rounds "
          f"x {args.per_client} images per client; health interval {args.interval:g} s -->")
    print(row("servers", "concurrent requests", "images/s (median of rounds)", "ratio vs 1 server", "target",
              "jobs per server"))
    print(row(*["---"] * 6))
    base = statistics.median(rates["1"])
    for name, n in cases:
        rate = statistics.median(rates[name])
        print(row(name, n, f"{rate:.2f}", f"{rate / base:.2f}x", f">= {0.9 * n:.1f}x",
                  " / ".join(map(str, shares[name]))))
    for m in managers.values():
        m.shutdown()
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
    loop.close()


if __name__ == "__main__":
    main()
