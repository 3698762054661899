"""trimkit in front of real engines (llama.cpp's llama-server, vLLM on the CPU), measured side by side.

    python benchmarks/bench_engines.py [--runs 20] [--engines llama,vllm] [--requests 200] [--skip-untrimmed]

Starts each engine on 127.0.0.1 with the tiny random model (built or installed
once into the cache, as the tests do; see ``trimkit.testing.engines``) and prints,
per engine and trimkit backend (``openai``, ``anthropic``):

1. time to first token through trimkit ÷ direct to the engine: a Claude-Code-shaped
   first request (88 KB) through trimkit, and the same trimmed, rendered chat sent
   straight to the engine; ``max_tokens: 1``, median of ``--runs`` interleaved runs
   after one warm-up each. The engine's prefix cache is on, as it would be in use,
   so after the warm-up both sides read the prompt from it: the ratio is what
   trimkit adds (trim, render, one more HTTP hop), not prefill;
2. turn 2 of a Claude-Code-shaped session through trimkit (the billing nonce changes
   every turn, as Claude Code's does): the prompt tokens the engine reports it
   took from its prefix cache, with trimkit's trimming and with every stage off
   (which keeps the nonce near the start of the prompt);
3. with two llama-server processes behind one trimkit (``upstreams``), ``--requests``
   requests eight at a time, one engine killed after half have been answered:
   how many were answered, and what the others got.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_upstream import one_token_through_trimkit  # noqa: E402
from tests.fixtures import claude_code as cc  # noqa: E402

from trimkit import Pipeline, decode_request  # noqa: E402
from trimkit.backends.upstream import make_upstream_backend  # noqa: E402
from trimkit.render import chat_messages  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402
from trimkit.testing.engines import Engine, start_llama_server, start_vllm  # noqa: E402
from trimkit.testing.gguf_export import write_gguf  # noqa: E402
from trimkit.testing.tinymodel import build_tiny_model  # noqa: E402

ALL_STAGES = ["client_noise", "system_prompt", "reminders", "tools", "output_format", "budget"]
TIMEOUT = httpx.Timeout(1800.0)
WINDOW = 65536  # room for the untrimmed session (~44,000 tokens for the tiny tokenizer)


def settings(engine: Engine, backend: str, model: Path, **more) -> ServerSettings:
    return ServerSettings(backend=backend, upstream=engine.url, upstream_model=engine.model,
                          upstream_api_key=engine.api_key, upstream_tokenizer=str(model), upstream_timeout=1800,
                          **more)


def direct(engine: Engine, backend: str, chat: list[dict]) -> float:
    headers = {"authorization": f"Bearer {engine.api_key}"}
    if backend == "openai":
        path, body = "/v1/chat/completions", {"model": engine.model, "messages": chat, "max_tokens": 1}
    else:
        system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
        turns = [m for m in chat if m["role"] != "system"]
        path, body = "/v1/messages", {"model": engine.model, "system": system, "messages": turns, "max_tokens": 1}
    start = time.perf_counter()
    response = httpx.post(engine.url + path, json=body, headers=headers, timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def time_to_first_token(engine: Engine, backend: str, model: Path, runs: int) -> None:
    request = cc.first_request(cc.EXAMPLE_PROMPT)
    config = settings(engine, backend, model)
    backend_object = make_upstream_backend(config)
    with LiveServer(create_app(config, backend=backend_object)) as server:
        chat = chat_messages(Pipeline().trim(decode_request(request), backend_object.profile).request)
        one_token_through_trimkit(server.url, request)
        direct(engine, backend, chat)
        times_direct, times_through = [], []
        for _ in range(runs):
            times_direct.append(direct(engine, backend, chat))
            elapsed, usage = one_token_through_trimkit(server.url, request)
            times_through.append(elapsed)
    d, t = statistics.median(times_direct), statistics.median(times_through)
    prompt = usage["input_tokens"] + (usage.get("cache_read_input_tokens") or 0)
    print(f"   {engine.kind:13}{backend:10}{prompt:>8,}{d * 1000:>11.1f}{t * 1000:>11.1f}{t / d:>9.2f}×")


def turn_two(engine: Engine, backend: str, model: Path, stages: dict | None, label: str) -> None:
    """Its own user prompt per run, so turn 2 can find only this run's turn 1 in the engine's cache
    (and turn 1 only what every run shares: the system prompt and tools before it)."""
    prompt = f"{cc.SESSION_PROMPT} ({engine.kind}, {backend}, {label})"
    requests = cc.session_prefixes(1, nonce=lambda k: f"{k + 1:04d}", prompt=prompt)
    config = settings(engine, backend, model, stages=stages or {})
    with LiveServer(create_app(config, pipeline=Pipeline(stages or {}))) as server:
        first_time, first = one_token_through_trimkit(server.url, requests[0])
        second_time, second = one_token_through_trimkit(server.url, requests[1])
    first_cached = first.get("cache_read_input_tokens") or 0
    before = first["input_tokens"] + first_cached
    cached = second.get("cache_read_input_tokens") or 0
    total = second["input_tokens"] + cached
    print(f"   {engine.kind:13}{backend:10}{label:11}{before:>8,}{first_cached:>8,}{total:>8,}{cached:>8,}"
          f"{cached / before:>10.0%}{first_time:>8.2f}s{second_time:>8.2f}s")


def two_upstreams(gguf: Path, model: Path, requests: int, logs: Path) -> None:
    print(f"\n3. two llama-server upstreams behind one trimkit, {requests} requests 8 at a time, "
          f"one engine killed after {requests // 2} answers")
    engines = [start_llama_server(gguf, log_dir=logs), start_llama_server(gguf, log_dir=logs)]
    answered, errors, lock = [], [], threading.Lock()
    killed_at: list[float] = []
    try:
        config = ServerSettings(backend="openai", upstreams=[e.url for e in engines], upstream_model="tiny",
                                upstream_api_key=engines[0].api_key, upstream_tokenizer=str(model))
        with LiveServer(create_app(config)) as server:
            def one(index: int) -> None:
                body = {"model": "claude-x", "max_tokens": 48, "stream": index % 2 == 0,
                        "messages": [{"role": "user", "content": f"request {index}: summarise the parser"}]}
                response = httpx.post(server.url + "/v1/messages", json=body, timeout=TIMEOUT)
                text = response.text
                ok = response.status_code == 200 and ("message_stop" in text if body["stream"] else True)
                with lock:
                    if ok:
                        answered.append(index)
                    else:
                        errors.append((index, response.status_code, text[-300:]))
                    if len(answered) == requests // 2 and not killed_at:
                        killed_at.append(time.perf_counter())
                        engines[0].kill()

            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, range(requests)))
            elapsed = time.perf_counter() - start
            health = httpx.get(server.url + "/health").json()
    finally:
        for engine in engines:
            engine.stop()
    print(f"   answered {len(answered)} of {requests} in {elapsed:.1f} s; {len(errors)} errors "
          f"(the requests in flight on the killed engine); health after: {health['detail']}")
    for index, status, tail in errors:
        kind = "SSE error event" if status == 200 else f"HTTP {status}"
        print(f"     request {index}: {kind}: {tail.strip().splitlines()[-1][:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="time-to-first-token runs per side (median)")
    parser.add_argument("--engines", default="llama,vllm", help="comma-separated: llama, vllm")
    parser.add_argument("--requests", type=int, default=200, help="requests in the two-upstream run (0: skip)")
    parser.add_argument("--skip-untrimmed", action="store_true", help="leave out the slow untrimmed sessions")
    args = parser.parse_args()
    wanted = args.engines.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        model = build_tiny_model(logs / "tiny-model", eos_bias=-30)
        gguf = write_gguf(model, logs / "tiny.gguf")
        engines = []
        try:
            if "llama" in wanted:
                engines.append(start_llama_server(gguf, context=WINDOW, log_dir=logs))
            if "vllm" in wanted:
                engines.append(start_vllm(model, max_model_len=WINDOW, log_dir=logs))
            print(f"1. time to first token, Claude-Code-shaped first request (median of {args.runs}, interleaved)")
            print(f"   {'engine':13}{'backend':10}{'prompt':>8}{'direct ms':>11}{'trimkit ms':>11}{'ratio':>10}")
            for engine in engines:
                for backend in ("openai", "anthropic"):
                    time_to_first_token(engine, backend, model, args.runs)
            print("\n2. turn 2 of a Claude-Code-shaped session: prompt tokens read from the engine's prefix cache")
            print(f"   {'engine':13}{'backend':10}{'':11}{'turn 1':>8}{'cached':>8}{'turn 2':>8}{'cached':>8}"
                  f"{'of turn 1':>10}{'turn 1':>9}{'turn 2':>9}")
            for engine in engines:
                for backend in ("openai", "anthropic"):
                    turn_two(engine, backend, model, None, "trimmed")
                    if not args.skip_untrimmed:
                        turn_two(engine, backend, model, {"disabled": ALL_STAGES}, "untrimmed")
        finally:
            for engine in engines:
                engine.stop()
        if args.requests and "llama" in wanted:
            two_upstreams(gguf, model, args.requests, logs)


if __name__ == "__main__":
    main()
