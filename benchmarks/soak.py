"""Hardening figures: fuzzing, load, disconnects, memory and hostile inputs, in one run.

    python benchmarks/soak.py                 # everything (about an hour on 2 cores: 20,000 bodies on MLX)
    python benchmarks/soak.py --quick         # smaller counts, for a first look
    python benchmarks/soak.py --no-mlx        # replay backend only
    python benchmarks/soak.py --mlx-fuzz 2000 # fewer fuzzed bodies on the tiny MLX model

Prints:
  - requests fuzzed (hypothesis strategies and schemathesis) and 5xx seen;
  - concurrent streaming clients held: completed / 529, with a short and a long queue;
  - time from a client's disconnect to the model being free and to the next request
    starting generation (replay backend with a slow step; the tiny MLX model), next to
    the length of one decode step;
  - memory of a `trimkit serve` process (RSS) after 50 and after 1,000 varied requests
    (150 on the tiny MLX model, whose CPU prefill of Claude Code prompts is slow);
  - hostile inputs, each to a fresh `trimkit serve`: peak RSS (VmHWM) and the answer for a
    1 MB `stop_sequences` entry and for 1 MB of unclosed `<example>` tags in tool descriptions;
    `/health` latency while a 30 MB body is prepared; how long a request waits behind nine
    streaming clients that never read;
  - requests fuzzed on the tiny MLX model (20,000 by default) and 5xx seen.

Every server is started here on 127.0.0.1 and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.fixtures import claude_code as cc  # noqa: E402
from tests.fixtures.hardening import (  # noqa: E402
    REPLAY_TURNS,
    ChunkBackend,
    EchoBackend,
    Tally,
    base_request,
    json_bodies,
    probed_mlx_backend,
    profile,
    serve,
    served_jobs,
    strange_requests,
)
from trimkit.backends.replay import ReplayBackend  # noqa: E402
from trimkit.testing import spawn_server, stop_server  # noqa: E402

JSON = {"content-type": "application/json"}


# --------------------------------------------------------------------------- fuzzing


def fuzz(examples: int) -> Tally:
    import schemathesis
    from schemathesis import GenerationMode

    tally = Tally()
    backend = ReplayBackend(REPLAY_TURNS, profile=profile(), loop=True)
    quiet = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        for strategy in (json_bodies, strange_requests):
            @quiet
            @given(body=strategy, count=...)
            def send(body, count: bool):
                route = "/v1/messages/count_tokens" if count else "/v1/messages"
                tally.check(client.post(route, content=body, headers=JSON))

            send()
        schema = schemathesis.openapi.from_url(live.url + "/schema/openapi.json")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @quiet
            @given(case=schema.as_strategy(generation_mode=mode))
            def call(case):
                response = case.call(timeout=60)
                tally.check(httpx.Response(response.status_code, content=response.content, headers={
                    "content-type": response.headers.get("content-type", [""])[0]}))

            call()
    return tally


# --------------------------------------------------------------------------- load


def concurrent_streams(clients: int, max_queue: int, timeout: float = 60) -> dict[str, int]:
    backend = EchoBackend(chunks=16, delay=0.005)
    outcome = {"completed": 0, "529": 0, "wrong tokens": 0, "hung": 0, "other": 0}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = base_request(stream=True, messages=[{"role": "user", "content": f"soak-{i}"}])
        try:
            response = await asyncio.wait_for(client.post("/v1/messages", json=body), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            outcome["hung"] += 1
            return
        if response.status_code == 529:
            outcome["529"] += 1
        elif response.status_code != 200 or "event: message_stop" not in response.text:
            outcome["other"] += 1
        else:
            texts = [json.loads(line[6:])["delta"].get("text", "") for line in response.text.splitlines()
                     if line.startswith("data: ") and '"content_block_delta"' in line]
            ok = "".join(texts) == f"<soak-{i}>" * backend.chunks
            outcome["completed" if ok else "wrong tokens"] += 1

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
            await asyncio.gather(*(one(client, i) for i in range(clients)))

    with serve(backend, max_queue=max_queue) as live:
        asyncio.run(main(live.url))
    outcome["most at once on the model"] = backend.most_active
    return outcome


# --------------------------------------------------------------------------- disconnects


def first_delta_then_close(client: httpx.Client, body: dict) -> float:
    """Stream until the first text arrives, then drop the connection; returns when it was dropped."""
    with client.stream("POST", "/v1/messages", json=body) as response:
        lines = response.iter_lines()
        while next(lines) != "event: content_block_delta":
            pass
        closed_at = time.perf_counter()
        response.close()
    return closed_at


def replay_disconnects(trials: int, step: float) -> tuple[list[float], list[float]]:
    """(disconnect → backend closed, disconnect → next request's generation started), in seconds."""
    freed, next_started = [], []
    for _ in range(trials):
        backend = EchoBackend(chunks=10**6, delay=step)
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            closed_at = first_delta_then_close(client, base_request(stream=True, max_tokens=10**6))
            client.post("/v1/messages", json=base_request(max_tokens=1))
        freed.append(backend.ended[0] - closed_at)
        next_started.append(backend.started[1] - closed_at)
    return freed, next_started


def mlx_disconnects(model_dir: Path, trials: int) -> dict[str, list[float]]:
    probed = probed_mlx_backend()
    backend = probed(str(model_dir)).wait_ready(60)
    figures: dict[str, list[float]] = {"freed": [], "next": [], "step": [], "steps after cancel": []}
    try:
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=60) as client:
            client.post("/v1/messages", json=base_request(max_tokens=200, temperature=0.0))
            backend.wait_idle(30)
            [plain] = served_jobs(backend)
            step = (plain["end"] - plain["start"]) / max(plain["emitted"], 1)
            for _ in range(trials):
                backend.jobs.clear()
                closed_at = first_delta_then_close(client, base_request(stream=True, max_tokens=20_000))
                client.post("/v1/messages", json=base_request(max_tokens=1))
                backend.wait_idle(30)
                left, following = served_jobs(backend)[:2]
                figures["freed"].append(left["end"] - closed_at)
                figures["next"].append(following["start"] - closed_at)
                figures["steps after cancel"].append(left["emitted"] - (left["emitted_at_cancel"] or 0))
        figures["step"] = [step]
    finally:
        backend.close()
    return figures


# --------------------------------------------------------------------------- memory


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def varied_requests(count: int, turns: int):
    """Claude-Code-shaped traffic: sessions up to ``turns`` long, title requests, counts, bad requests."""
    prefixes = cc.session_prefixes(turns, nonce=lambda k: f"{k:04d}")
    for i in range(count):
        if i % 13 == 0:
            yield "/v1/messages", {"model": "claude-x", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]}
        elif i % 11 == 0:
            yield "/v1/messages/count_tokens", {k: v for k, v in prefixes[i % len(prefixes)].items() if k != "max_tokens"}
        elif i % 10 == 0:
            yield "/v1/messages", cc.title_request(f"task number {i}", nonce=f"{i:04d}")
        else:
            request = dict(prefixes[i % len(prefixes)])
            request["stream"] = i % 2 == 0
            request["system"] = [dict(request["system"][0], text=cc.billing_header(f"{i:06d}")), *request["system"][1:]]
            yield "/v1/messages", request


def memory_soak(args: list[str], requests: int, turns: int, first: int = 50) -> tuple[int, int, float]:
    proc, url = spawn_server(args, timeout=120)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            after_first = 0
            for i, (route, body) in enumerate(varied_requests(requests, turns), start=1):
                response = client.post(route, json=body)
                if response.status_code >= 500:
                    raise RuntimeError(f"request {i}: {response.status_code} {response.text[:200]}")
                if i == first:
                    after_first = rss_kib(proc.pid)
            after_all = rss_kib(proc.pid)
    finally:
        stop_server(proc)
    return after_first, after_all, 100.0 * (after_all - after_first) / after_first


# --------------------------------------------------------------------------- hostile inputs


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def replay_server_process(script_turns: list[str]) -> tuple[object, str]:
    script = Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "script.json"
    script.write_text(json.dumps(script_turns))
    return spawn_server(["--backend", "replay", "--script", str(script)], timeout=120)


def hostile_peak(body: dict) -> tuple[int, int, int, float]:
    """A fresh server's peak RSS before and after ``body`` (KiB), the answer's status and its seconds."""
    proc, url = replay_server_process(["ok"] * 4)
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            client.post("/v1/messages", json=base_request())
            before = peak_rss_kib(proc.pid)
            started = time.perf_counter()
            status = client.post("/v1/messages", json=body).status_code
            elapsed = time.perf_counter() - started
            after = peak_rss_kib(proc.pid)
    finally:
        stop_server(proc)
    return before, after, status, elapsed


def stop_sequence_body(chars: int) -> dict:
    return base_request(stop_sequences=["a" * chars])


def example_tags_body(chars: int) -> dict:
    tools = [{"name": name, "description": ("<example>" * (chars // 9 + 1))[:chars],
              "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}} for name in ("Read", "Bash")]
    return base_request(tools=tools)


def health_while_preparing(body_mb: int) -> tuple[list[float], float, int]:
    """/health latencies (s) while a ``body_mb`` MB request is prepared; the request's seconds and status."""
    proc, url = replay_server_process(["ok"] * 4)
    big = base_request(messages=[  # a session whose old tool result is huge: trimmed, then answered
        {"role": "user", "content": "read the log"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": "log"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "log line\n" * (body_mb * 1000 * 1000 // 10)}]},
        {"role": "assistant", "content": "Read it."},
        {"role": "user", "content": "what went wrong?"}])
    latencies: list[float] = []
    outcome: dict = {}
    try:
        def send() -> None:
            started = time.perf_counter()
            outcome["status"] = httpx.post(url + "/v1/messages", json=big, timeout=600).status_code
            outcome["seconds"] = time.perf_counter() - started

        import threading

        worker = threading.Thread(target=send)
        worker.start()
        with httpx.Client(base_url=url, timeout=600) as client:
            while worker.is_alive():
                started = time.perf_counter()
                client.get("/health")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)
        worker.join()
    finally:
        stop_server(proc)
    return latencies, outcome["seconds"], outcome["status"]


def behind_silent_clients(silent: int, chunks: int = 64) -> tuple[float, int, int]:
    """Seconds a request waits behind ``silent`` streaming clients that never read (each 4 MB of output)."""
    import socket

    backend = ChunkBackend(chunks=chunks)
    with serve(backend, max_queue=8) as live:
        data = json.dumps(base_request(stream=True, max_tokens=10**6)).encode()
        head = (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(data))
        sockets = []
        for _ in range(silent):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(head + data)
            sockets.append(sock)
        time.sleep(0.5)
        finished = backend.finished
        started = time.perf_counter()
        status = httpx.post(live.url + "/v1/messages", json=base_request(max_tokens=1), timeout=600).status_code
        waited = time.perf_counter() - started
        for sock in sockets:
            sock.close()
    return waited, status, finished


def mlx_fuzz(model_dir: Path, examples: int) -> Tally:
    """``examples`` fuzzed bodies (half plain JSON values, half strange requests) against the tiny MLX model."""
    from trimkit.backends.mlx import MLXBackend

    tally = Tally()
    backend = MLXBackend(str(model_dir)).wait_ready(120)
    quiet = settings(max_examples=examples // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    try:
        with serve(backend, max_output_tokens=8, context_window=4096) as live, \
                httpx.Client(base_url=live.url, timeout=600) as client:
            for strategy in (json_bodies, strange_requests):
                @quiet
                @given(body=strategy, count=...)
                def send(body, count: bool):
                    route = "/v1/messages/count_tokens" if count else "/v1/messages"
                    tally.check(client.post(route, content=body, headers=JSON))

                send()
    finally:
        backend.close()
    return tally


# --------------------------------------------------------------------------- report


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, worst {max(values) * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--no-mlx", action="store_true", help="skip the runs on the tiny MLX model")
    parser.add_argument("--mlx-fuzz", type=int, default=None, help="bodies fuzzed on the tiny MLX model (20,000)")
    options = parser.parse_args()
    mlx_fuzz_examples = options.mlx_fuzz or (500 if options.quick else 20_000)
    fuzz_examples, memory_requests, mlx_memory_requests, trials = (
        (100, 300, 60, 5) if options.quick else (500, 1000, 150, 20)
    )
    started = last = time.perf_counter()

    def lap() -> str:
        nonlocal last
        now, elapsed = time.perf_counter(), time.perf_counter() - last
        last = now
        return f"[{elapsed:.0f} s]"

    tally = fuzz(fuzz_examples)
    print(f"bad input:    {tally.summary()} {lap()}")
    for problem in tally.server_errors[:5]:
        print(f"              5xx: {problem}")

    for clients, max_queue in ((32, 8), (32, 32)):
        outcome = concurrent_streams(clients, max_queue)
        print(f"load:         {clients} streaming clients, max_queue {max_queue}: "
              + ", ".join(f"{k} {v}" for k, v in outcome.items()) + f" {lap()}")

    step = 0.05
    freed, next_started = replay_disconnects(trials, step)
    print(f"disconnect:   replay backend, {step * 1000:.0f} ms per step, {trials} trials: "
          f"model free {ms(freed)}; next request generating {ms(next_started)} {lap()}")

    model_dir = None
    if not options.no_mlx:
        from trimkit.testing.tinymodel import build_tiny_model

        model_dir = build_tiny_model(Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "tiny")
        figures = mlx_disconnects(model_dir, trials)
        print(f"disconnect:   tiny MLX model, {trials} trials: model free {ms(figures['freed'])}; "
              f"next request generating {ms(figures['next'])}; one decode step {figures['step'][0] * 1000:.2f} ms; "
              f"steps emitted after the cancel flag: worst {max(figures['steps after cancel'])} {lap()}")

    script = Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "script.json"
    script.write_text(json.dumps(REPLAY_TURNS * (2 * memory_requests // len(REPLAY_TURNS) + 2)))  # a retried tool call takes two
    first, final, growth = memory_soak(["--backend", "replay", "--script", str(script)], memory_requests, turns=30)
    print(f"memory:       replay backend, {memory_requests} varied requests: RSS after 50 {first / 1024:.1f} MiB, "
          f"after {memory_requests} {final / 1024:.1f} MiB ({growth:+.1f} %) {lap()}")
    if model_dir is not None:
        mlx_args = ["--model", str(model_dir), "--max-output-tokens", "16", "--context-window", "16384"]
        first, final, growth = memory_soak(mlx_args, mlx_memory_requests, turns=6)
        print(f"memory:       tiny MLX model, {mlx_memory_requests} varied requests: RSS after 50 "
              f"{first / 1024:.1f} MiB, after {mlx_memory_requests} {final / 1024:.1f} MiB ({growth:+.1f} %) {lap()}")

    for name, body in (("1 MB stop_sequences entry", stop_sequence_body(1 << 20)),
                       ("1 MB of unclosed <example> tags in tool descriptions", example_tags_body(1 << 20))):
        before, after, status, elapsed = hostile_peak(body)
        print(f"hostile:      {name}: answered {status} in {elapsed:.2f} s; peak RSS {before / 1024:.0f} MiB "
              f"before, {after / 1024:.0f} MiB after {lap()}")
    latencies, seconds, status = health_while_preparing(30)
    print(f"event loop:   /health while a 30 MB body is prepared ({status} after {seconds:.1f} s, "
          f"{len(latencies)} checks): median {statistics.median(latencies) * 1000:.1f} ms, "
          f"worst {max(latencies) * 1000:.1f} ms {lap()}")
    waited, status, finished = behind_silent_clients(9)
    print(f"silent:       a request behind 9 streaming clients that never read (4 MB each): {status} after "
          f"{waited * 1000:.0f} ms; their generations finished: {finished} of 9 {lap()}")
    if model_dir is not None:
        tally = mlx_fuzz(model_dir, mlx_fuzz_examples)
        print(f"bad input:    tiny MLX model: {tally.summary()} {lap()}")
        for problem in tally.server_errors[:5]:
            print(f"              5xx: {problem}")
    print(f"(soak took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
