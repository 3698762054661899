"""trimkit in front of an engine: the overhead it adds, and the prefix-cache hits it earns.

    python benchmarks/bench_upstream.py [--runs N] [--skip-untrimmed]

Runs ``mlx_lm.server`` on the tiny random model (CPU) and trimkit's ``openai``
backend in front of it, and prints two figures side by side:

1. time to first token for one Claude-Code-shaped first request, trimmed by
   trimkit, through trimkit and sent directly to mlx_lm.server as the same
   rendered chat (an engine without a prompt cache, so both are cold; a response
   of ``max_tokens: 1`` is the first token), once with trimkit's estimated token
   counts (the default) and once with the model's tokenizer (``upstream_tokenizer``);
2. on turn 2 of a Claude-Code-shaped session (the billing nonce changes every
   turn, as Claude Code's does), the prompt tokens mlx_lm.server reports it took
   from its prefix cache, and each turn's wall time, with trimkit's trimming and
   with every stage disabled (the untrimmed prompt is ~44,000 tokens for the tiny
   tokenizer, so that half takes a few minutes on a CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import claude_code as cc  # noqa: E402

from trimkit import Pipeline, decode_request  # noqa: E402
from trimkit.backends.openai import OpenAIBackend  # noqa: E402
from trimkit.backends.upstream import UpstreamConfig  # noqa: E402
from trimkit.render import chat_messages  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer, spawn_mlx_lm_server, stop_server  # noqa: E402
from trimkit.testing.tinymodel import build_tiny_model  # noqa: E402

ALL_STAGES = ["client_noise", "system_prompt", "reminders", "tools", "budget"]
TIMEOUT = httpx.Timeout(900.0)


def trimkit_in_front(
    engine: str, model: Path, stages: dict | None = None, *, exact: bool = True
) -> tuple[LiveServer, OpenAIBackend]:
    """trimkit on a thread; ``exact`` counts tokens with the model's tokenizer (``upstream_tokenizer``)."""
    tokenizer = str(model) if exact else None
    backend = OpenAIBackend(UpstreamConfig(engine, str(model), tokenizer=tokenizer, timeout=900))
    settings = ServerSettings(backend="openai", upstream=engine, stages=stages or {})
    return LiveServer(create_app(settings, backend=backend, pipeline=Pipeline(stages or {}))), backend


def one_token_through_trimkit(url: str, request: dict) -> tuple[float, dict]:
    body = {**request, "stream": False, "max_tokens": 1}
    start = time.perf_counter()
    response = httpx.post(url + "/v1/messages", json=body, timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()["usage"]


def one_token_direct(engine: str, model: Path, chat: list[dict]) -> tuple[float, dict]:
    body = {"model": str(model), "messages": chat, "max_tokens": 1, "stream": False}
    start = time.perf_counter()
    response = httpx.post(engine + "/v1/chat/completions", json=body, timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()["usage"]


def overhead(model: Path, runs: int) -> None:
    how = "one run each" if runs == 1 else f"median of {runs} interleaved runs"
    print(f"1. time to first token, same trimmed prompt, engine without a prompt cache ({how})")
    proc, engine = spawn_mlx_lm_server(model, "--prompt-cache-size", "0")
    request = cc.first_request(cc.EXAMPLE_PROMPT)
    try:
        for exact, label in ((False, "estimated token counts (default)"), (True, "exact counts (upstream_tokenizer)")):
            live, backend = trimkit_in_front(engine, model, exact=exact)
            with live as server:
                warm = {"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "warm up"}]}
                one_token_through_trimkit(server.url, warm)
                one_token_direct(engine, model, [{"role": "user", "content": "warm up the engine"}])
                chat = chat_messages(Pipeline().trim(decode_request(request), backend.profile).request)
                direct, through = [], []
                for _ in range(runs):
                    direct.append(one_token_direct(engine, model, chat)[0])
                    elapsed, usage = one_token_through_trimkit(server.url, request)
                    through.append(elapsed)
            d, t = statistics.median(direct), statistics.median(through)
            prompt = usage["input_tokens"] + (usage.get("cache_read_input_tokens") or 0)
            print(f"   {label}: {prompt:,} prompt tokens, tier {backend.profile.tier}")
            print(f"     direct to mlx_lm.server  {d * 1000:9.1f} ms")
            print(f"     through trimkit          {t * 1000:9.1f} ms   (trim + render + one more HTTP hop)")
            print(f"     ratio                    {t / d:9.3f}×")
    finally:
        stop_server(proc)


def turn_two(model: Path, engine: str, stages: dict | None) -> tuple[dict, float, float]:
    requests = cc.session_prefixes(1, nonce=lambda k: f"{k + 1:04d}")
    with trimkit_in_front(engine, model, stages)[0] as server:
        first, first_usage = one_token_through_trimkit(server.url, requests[0])
        second, usage = one_token_through_trimkit(server.url, requests[1])
    return first_usage, usage, first, second


def prefix_cache(model: Path, skip_untrimmed: bool) -> None:
    print("\n2. turn 2 of a Claude-Code-shaped session: prompt tokens from mlx_lm.server's prefix cache")
    print(f"   {'':26}{'turn 1':>8}{'turn 2':>8}{'cached':>8}{'of turn 1':>11}{'turn 1':>9}{'turn 2':>9}")
    print(f"   {'':26}{'prompt':>8}{'prompt':>8}{'':>8}{'':>11}{'time':>9}{'time':>9}")
    variants = [("trimmed (default stages)", None)]
    if not skip_untrimmed:
        variants.append(("untrimmed (all disabled)", {"disabled": ALL_STAGES}))
    for label, stages in variants:
        proc, engine = spawn_mlx_lm_server(model)
        try:
            first_usage, usage, first, second = turn_two(model, engine, stages)
        finally:
            stop_server(proc)
        cached = usage.get("cache_read_input_tokens") or 0
        before = first_usage["input_tokens"] + (first_usage.get("cache_read_input_tokens") or 0)
        total = usage["input_tokens"] + cached
        print(f"   {label:26}{before:>8,}{total:>8,}{cached:>8,}{cached / before:>10.0%}{first:>8.2f}s{second:>8.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-untrimmed", action="store_true", help="leave out the slow untrimmed session")
    parser.add_argument("--runs", type=int, default=1, help="time-to-first-token runs per side (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny-model")
        overhead(model, args.runs)
        prefix_cache(model, args.skip_untrimmed)


if __name__ == "__main__":
    main()
