"""What /metrics and the live view cost per request: SSE throughput with them on ÷ off, replay backend.

    python benchmarks/bench_observe.py               # 21 interleaved rounds of each workload
    python benchmarks/bench_observe.py --rounds 5

Two servers in one process on the same kind of replay backend: one with ``metrics`` and
``live_view`` on and a page listening to ``/ui/events`` (so every request's row is
rendered and sent), one with both off. Rounds alternate between them (on, off, off, on,
…) so that a busy machine slows both alike; each figure is the median over rounds, in
tokens per second of wall-clock time and per second of the process's CPU time (the
latter holds steadier on a machine that others share).
Workloads:

- short: a one-line question, a 300-token streamed answer — per-request costs show most;
- claude-code: the Claude-Code-shaped first request (88 KB, 25 tools), the same answer.

Then the server alone: the app driven in-process through ASGI, no HTTP and no client,
its CPU time per request on and off (the finest view of what observing adds).

Goal: on ÷ off ≥ 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import claude_code as cc  # noqa: E402

from trimkit.backends.replay import ReplayBackend  # noqa: E402
from trimkit.profile import ModelProfile  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402

ANSWER_TOKENS = 300
GOAL = 0.95


def backend() -> ReplayBackend:
    turn = "".join(f"w{i % 100:02d} " for i in range(ANSWER_TOKENS))
    return ReplayBackend([turn], loop=True, chunk_chars=4,
                         profile=ModelProfile(name="replay", context_window=200_000, tier="small"))


def listen(url: str, out: Path) -> subprocess.Popen:
    """A live-view page in a process of its own, as a browser is: curl reading /ui/events into a file."""
    return subprocess.Popen(["curl", "-sN", url + "/ui/events", "-o", str(out)], stdin=subprocess.DEVNULL)


def round_rate(client: httpx.Client, url: str, body: dict, requests: int) -> tuple[float, float]:
    """Streamed tokens per second of wall-clock time and per second of this process's CPU time (the
    server's and the client's), over ``requests`` requests made one after another."""
    deltas = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        with client.stream("POST", url + "/v1/messages", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line == "event: content_block_delta":
                    deltas += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert deltas >= requests * ANSWER_TOKENS, deltas  # each of the answer's tokens went out as its own event
    tokens = requests * ANSWER_TOKENS
    return tokens / elapsed, tokens / cpu


def summary(rates: dict[str, list[tuple[float, float]]], which: int) -> tuple[float, float, float, float]:
    """(median on, median off, their ratio, median of the ratios of rounds run side by side)."""
    on = [r[which] for r in rates["on"]]
    off = [r[which] for r in rates["off"]]
    paired = statistics.median(a / b for a, b in zip(on, off))
    return statistics.median(on), statistics.median(off), statistics.median(on) / statistics.median(off), paired


def workloads() -> dict[str, dict]:
    short = {"model": "claude-opus-4-8", "max_tokens": 4096, "stream": True,
             "messages": [{"role": "user", "content": "what does the cart module do?"}]}
    claude_code = {**cc.first_request(cc.EXAMPLE_PROMPT), "max_tokens": 4096, "stream": True}
    return {"short": short, "claude-code": claude_code}


async def asgi_request(app, body: bytes) -> None:
    """One streamed Messages request straight into the app, the client reading at once."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"user-agent", b"Anthropic/Python 2.14.0"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8787)}
    done, sent = asyncio.Event(), [False]

    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)


def server_cpu(body: dict, rounds: int, requests: int) -> tuple[float, float]:
    """Median CPU milliseconds per request of the app alone, on and off, in interleaved rounds."""
    apps = {"on": create_app(ServerSettings(backend="replay"), backend=backend()),
            "off": create_app(ServerSettings(backend="replay", metrics=False, live_view=False), backend=backend())}
    raw = json.dumps(body).encode()

    async def run() -> dict[str, list[float]]:
        for app in apps.values():
            for _ in range(3):
                await asgi_request(app, raw)
        times: dict[str, list[float]] = {"on": [], "off": []}
        for i in range(rounds):
            for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
                start = time.process_time()
                for _ in range(requests):
                    await asgi_request(apps[side], raw)
                times[side].append((time.process_time() - start) / requests * 1000)
        return times

    times = asyncio.run(run())
    return statistics.median(times["on"]), statistics.median(times["off"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=10, help="requests per round")
    args = parser.parse_args()

    on_app = create_app(ServerSettings(backend="replay"), backend=backend())
    off_app = create_app(ServerSettings(backend="replay", metrics=False, live_view=False), backend=backend())
    print(f"SSE throughput, replay backend, {ANSWER_TOKENS}-token answers, {args.requests} requests per round, "
          f"{args.rounds} rounds per side, interleaved; on = /metrics + live view with a page listening")
    print("  (the page is curl in a process of its own, as a browser would be; rows reach it every 0.25 s at most)")
    events = Path(tempfile.mkdtemp()) / "events.txt"
    with LiveServer(on_app) as on, LiveServer(off_app) as off, httpx.Client(timeout=120) as client:
        page = listen(on.url, events)
        results = []
        for name, body in workloads().items():
            for url in (on.url, off.url):  # warm up: templates compiled, connections open
                round_rate(client, url, body, 2)
            rates: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
            for i in range(args.rounds):
                order = (("on", on.url), ("off", off.url)) if i % 2 == 0 else (("off", off.url), ("on", on.url))
                for side, url in order:
                    rates[side].append(round_rate(client, url, body, args.requests))
            results.append((name, *(summary(rates, k) for k in (0, 1))))
        metrics = client.get(on.url + "/metrics").text
        time.sleep(0.5)
        page.terminate()
        page.wait()
    for name, wall, cpu in results:
        for label, (rate_on, rate_off, ratio, paired) in (("wall clock", wall), ("CPU time", cpu)):
            verdict = "met" if ratio >= GOAL else "MISSED"
            print(f"  {name:<12} {label:<10} on {rate_on:>8,.0f} tok/s   off {rate_off:>8,.0f} tok/s   "
                  f"on ÷ off {ratio:.3f} (median of paired rounds {paired:.3f})  goal ≥ {GOAL}: {verdict}")
    counted = next(line for line in metrics.splitlines()
                   if line.startswith('trimkit_requests_total{endpoint="/v1/messages"'))
    rows = events.read_text().count("<tr id=")
    print(f"  the page was sent {rows:,} rows; /metrics counted: {counted}")
    print("the server alone (ASGI in-process, no HTTP, no client), CPU ms per request, median of rounds:")
    for name, body in workloads().items():
        on_ms, off_ms = server_cpu(body, args.rounds, args.requests)
        print(f"  {name:<12} on {on_ms:.3f} ms   off {off_ms:.3f} ms   +{on_ms - off_ms:.3f} ms   "
              f"throughput on ÷ off {off_ms / on_ms:.3f}")


if __name__ == "__main__":
    main()
