"""Several models on one server, side by side in one run, on tiny random MLX models of three sizes.

    python benchmarks/bench_models.py                    # both parts
    python benchmarks/bench_models.py --part residency   # 1 only (--requests N, default 300)
    python benchmarks/bench_models.py --part threads     # 2 only

1. Residency: N requests alternating at random (seeded) over three models, under
   a memory cap that fits the two largest together and never all three. Loads,
   unloads, MLX's peak memory ÷ the cap, and the latency of a request that had to
   load its model (unloading another first) ÷ one whose model was in memory.
2. Threads: a short request to one model while another model writes a long answer,
   with each model on its own generation thread (as served) ÷ with the models
   taking turns on MLX (one generation at a time, as with an MLX older than 0.31.2).
   Prompts start differently each time, so no request finds its prefix in a cache.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trimkit.backends import make_models  # noqa: E402
from trimkit.config.settings import ModelSettings, ServerSettings  # noqa: E402
from trimkit.server import create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402
from trimkit.testing.tinymodel import build_tiny_model  # noqa: E402

SHAPES = {"small": dict(hidden=128, layers=2, heads=2), "mid": dict(hidden=256, layers=4, heads=4),
          "big": dict(hidden=384, layers=6, heads=4)}
WINDOW = 1024
LONG_TOKENS = 400  # the long answer of part 2: long enough that taking turns shows, short on 2 cores
PROMPT = "Read the parser and explain how nested blocks are closed."


def messages(n: int, repeat: int = 1) -> list[dict]:
    """A prompt that starts differently for each ``n``, so no request finds its prefix in a
    cache: a switch then costs only the load and the unload."""
    return [{"role": "user", "content": f"Request {n}. " + " ".join([PROMPT] * repeat)}]


def build(root: Path) -> dict[str, Path]:
    return {name: build_tiny_model(root / name, seed=i, eos_bias=-30.0, **shape)
            for i, (name, shape) in enumerate(SHAPES.items())}


def settings(dirs: dict[str, Path], cap: int | None = None, window: int = WINDOW) -> ServerSettings:
    tables = [ModelSettings(model=str(path), alias=name) for name, path in dirs.items()]
    return ServerSettings(models=tables, context_window=window, memory_cap=cap or 10**12)


def cap_for_two(dirs: dict[str, Path]) -> int:
    sizes = {r.name: r.reservation() for r in make_models(settings(dirs)).residents}
    return sizes["mid"] + sizes["big"] + sizes["small"] // 2


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def residency(dirs: dict[str, Path], requests: int) -> None:
    import mlx.core as mx

    cap = cap_for_two(dirs)
    models = make_models(settings(dirs, cap))
    picks = random.Random(0).choices(list(SHAPES), k=requests)
    switched, stayed, active, reserved, held = [], [], [], [], []
    with LiveServer(create_app(settings(dirs, cap), models=models)) as server, httpx.Client(timeout=600) as http:
        while models.loaded() != ["big"]:  # the default model loads at start
            time.sleep(0.05)
        mx.reset_peak_memory()
        for n, model in enumerate(picks):
            events = len(models.events)
            started = time.perf_counter()
            response = http.post(server.url + "/v1/messages",
                                 json={"model": model, "max_tokens": 8, "temperature": 0, "messages": messages(n)})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            (switched if len(models.events) > events else stayed).append(elapsed)
            active.append(mx.get_active_memory() - models.baseline)
            reserved.append(models.committed())
            held.append(active[-1] + mx.get_cache_memory())
        peak = mx.get_peak_memory() - models.baseline
    loads = sum(r.stats.loads for r in models.residents) - 1  # the start's load of the default model aside
    unloads = sum(r.stats.unloads for r in models.residents)
    models.close()
    print(f"1. residency: {requests} requests at random over three models "
          f"({', '.join(f'{n} {picks.count(n)}' for n in SHAPES)}), memory cap {cap / 1e6:.1f} MB (fits two)")
    reservations = ", ".join(f"{r.name} {r.reservation() / 1e6:.1f} MB" for r in models.residents)
    print(f"   reservations: {reservations}; weights measured at load: "
          + ", ".join(f"{r.name} {(r.weights_bytes or 0) / 1e6:.1f} MB" for r in models.residents))
    print(f"   loads {loads}, unloads {unloads}; requests that switched models {len(switched)}, that did not "
          f"{len(stayed)}; last load / unload of each: " + ", ".join(
              f"{r.name} {r.stats.load_seconds * 1000:.0f} / {(r.stats.unload_seconds or 0) * 1000:.0f} ms"
              for r in models.residents))
    print(f"   peak MLX memory ÷ cap: {peak / 1e6:.1f} MB ÷ {cap / 1e6:.1f} MB = {peak / cap:.2f}"
          f"  (largest active after a request: {max(active) / cap:.2f}; largest reserved ÷ cap, what the cap "
          f"is enforced on: {max(reserved) / cap:.2f}; largest active + MLX's buffer cache ÷ cap: {max(held) / cap:.2f})")
    median_switch, median_stay = statistics.median(switched), statistics.median(stayed)
    print(f"   latency, switch ÷ no switch: median {median_switch * 1000:.1f} ms ÷ {median_stay * 1000:.1f} ms = "
          f"{median_switch / median_stay:.2f}×; p90 {percentile(switched, 0.9) * 1000:.1f} ÷ "
          f"{percentile(stayed, 0.9) * 1000:.1f} ms = {percentile(switched, 0.9) / percentile(stayed, 0.9):.2f}×")


async def short_during_long(url: str) -> tuple[float, float]:
    """Seconds for a short request to ``small`` sent once ``big`` has begun a long answer, and
    the long answer's tokens per second over the same stretch."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        body = {"model": "big", "max_tokens": LONG_TOKENS, "temperature": 0, "stream": True, "messages": messages(0, 8)}
        async with http.stream("POST", "/v1/messages", json=body) as long:
            lines = long.aiter_lines()
            async for line in lines:
                if line.startswith("event: content_block_delta"):
                    break
            started = time.perf_counter()
            short = asyncio.ensure_future(http.post("/v1/messages", json={
                "model": "small", "max_tokens": 8, "temperature": 0, "messages": messages(1, 8)}))
            deltas = 0
            with contextlib.suppress(StopAsyncIteration):  # taking turns, the long answer ends first
                while not short.done():
                    line = await anext(lines)
                    deltas += line.startswith("event: content_block_delta")
            (await short).raise_for_status()
            elapsed = time.perf_counter() - started
    return elapsed, deltas / elapsed


def threads(dirs: dict[str, Path], runs: int = 3) -> None:
    from trimkit.backends import mlx as mlx_backend

    results = {}
    for label, turns in (("own threads", contextlib.nullcontext()), ("taking turns", threading.Lock())):
        mlx_backend.MLX_TURNS = turns
        pair = settings({"small": dirs["small"], "big": dirs["big"]}, window=4 * WINDOW)
        models = make_models(pair)
        with LiveServer(create_app(pair, models=models)) as server:
            while sorted(models.loaded()) != ["big"]:
                time.sleep(0.05)
            asyncio.run(short_during_long(server.url))  # loads small, warms both
            results[label] = [asyncio.run(short_during_long(server.url)) for _ in range(runs)]
        models.close()
    mlx_backend.MLX_TURNS = contextlib.nullcontext()
    own = statistics.median(r[0] for r in results["own threads"])
    shared = statistics.median(r[0] for r in results["taking turns"])
    own_tps = statistics.median(r[1] for r in results["own threads"])
    print(f"2. threads: a short request (8 tokens) to one model while another writes a {LONG_TOKENS}-token answer "
          f"(median of {runs})")
    print(f"   short request's latency, own threads ÷ taking turns: {own * 1000:.0f} ms ÷ {shared * 1000:.0f} ms "
          f"= {own / shared:.3f}")
    print(f"   the long answer meanwhile: {own_tps:.0f} deltas/s with own threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "residency", "threads"), default="all")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trimkit-bench-models-") as tmp:
        dirs = build(Path(tmp))
        if args.part in ("all", "residency"):
            residency(dirs, args.requests)
        if args.part in ("all", "threads"):
            threads(dirs)


if __name__ == "__main__":
    main()
