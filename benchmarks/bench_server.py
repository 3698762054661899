"""Server figures, side by side in one run, on a tiny random MLX model and the replay backend.

    python benchmarks/bench_server.py            # everything (the untrimmed prefill takes a minute or two)
    python benchmarks/bench_server.py --quick    # skip the untrimmed run

1. Time to first token for a Claude-Code-shaped first request, untrimmed vs trimmed,
   through the server (a 1-token response: prefill plus one decode step), cold cache.
2. Prefix-cache reuse on turns 2..5 of a Claude-Code-shaped session.
3. Replay backend: streamed tokens per second through SSE (server overhead alone).
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

from trimkit import Pipeline  # noqa: E402
from trimkit.backends.replay import ReplayBackend  # noqa: E402
from trimkit.profile import ModelProfile  # noqa: E402
from trimkit.resources import builtin_plugins  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402

ALL_STAGES = [name for name, _ in builtin_plugins()]


def post(url: str, body: dict, timeout: float = 900) -> tuple[float, dict]:
    start = time.perf_counter()
    response = httpx.post(url + "/v1/messages", json=body, timeout=timeout)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()


def one_token(request: dict) -> dict:
    return {**request, "max_tokens": 1, "stream": False}


def ttft(backend, quick: bool) -> None:
    trimmed_app = create_app(ServerSettings(backend="mlx"), backend=backend, pipeline=Pipeline())
    untrimmed_app = create_app(
        ServerSettings(backend="mlx"), backend=backend, pipeline=Pipeline({"disabled": ALL_STAGES})
    )
    print("1. time to first token, Claude-Code-shaped first request (88 KB, 25 tools), cold prefix cache")
    print("   (the trimmed side warmed up once with another request, as a session's earlier turns would;")
    print("    the untrimmed side is not: its first-call costs are well under 1 % of its prefill)")
    rows = []

    def measure(url: str, runs: int, warm: bool = True) -> tuple[float, int]:
        if warm:
            post(url, one_token(cc.first_request("warm up", nonce="warm")))
        samples, tokens = [], 0
        for i in range(runs):
            backend.prompt_cache.clear()
            seconds, message = post(url, one_token(cc.first_request(cc.EXAMPLE_PROMPT, nonce=f"t{i}")))
            samples.append(seconds)
            tokens = message["usage"]["input_tokens"]
        return statistics.median(samples), tokens

    with LiveServer(trimmed_app) as trimmed:
        rows.append(("trimmed (small tier)", *measure(trimmed.url, 5)))
    if not quick:
        with LiveServer(untrimmed_app) as untrimmed:
            rows.append(("untrimmed", *measure(untrimmed.url, 1, warm=False)))
    for name, seconds, tokens in rows:
        print(f"   {name:<22}{seconds:>9.2f} s  {tokens:>7,} prompt tokens")
    if len(rows) == 2:
        ratio = rows[1][1] / rows[0][1]
        print(f"   ratio untrimmed / trimmed: {ratio:.1f}×  (goal ≥ 10×: {'met' if ratio >= 10 else 'MISSED'})")


def chat_turns() -> list[dict]:
    """A short exchange after Claude Code's first request: the answer, then a follow-up question."""
    first = cc.first_request("what does the cart module do?")
    answer = {"role": "assistant", "content": [{"type": "text", "text": "It keeps line items and computes totals with Decimal."}]}
    follow = {"role": "user", "content": [{"type": "text", "text": "and where are discounts applied?"}]}
    return [first, {**first, "messages": first["messages"] + [answer, follow]}]


def cache_reuse(backend) -> None:
    print("2. prefix-cache reuse across turns (trimmed, small tier)")
    app = create_app(ServerSettings(backend="mlx"), backend=backend, pipeline=Pipeline())
    runs = (
        ("chat: answer + follow-up question", chat_turns()),
        ("agent session: tool calls with file contents", cc.session_prefixes(5)[:6]),
    )
    with LiveServer(app) as server:
        for title, requests in runs:
            backend.prompt_cache.clear()
            print(f"   {title}")
            previous_total = 0
            for turn, request in enumerate(requests, start=1):
                seconds, message = post(server.url, one_token(request))
                usage = message["usage"]
                cached = usage["cache_read_input_tokens"]
                total = usage["input_tokens"] + cached
                share = 100.0 * usage["input_tokens"] / total
                reused = f"{100.0 * cached / previous_total:5.1f} %" if previous_total else "    -  "
                note = ""
                if turn == 2:
                    note = f"  goal ≤ 10 % prefilled: {'met' if share <= 10 else 'MISSED'}"
                print(
                    f"     turn {turn}: {total:>6,} prompt tokens, {cached:>6,} from cache "
                    f"(previous prompt reused: {reused}), {usage['input_tokens']:>5,} prefilled "
                    f"({share:4.1f} %), {seconds:5.2f} s{note}"
                )
                previous_total = total


def sse_throughput() -> None:
    print("3. replay backend: tokens streamed per second through SSE")
    tokens = 20_000
    turn = "".join(f"w{i % 100:02d} " for i in range(tokens))
    backend = ReplayBackend([turn] * 4, chunk_chars=4, profile=ModelProfile(name="replay", context_window=200_000))
    app = create_app(ServerSettings(backend="replay"), backend=backend)
    body = {"model": "claude-opus-4-8", "max_tokens": tokens * 2, "stream": True,
            "messages": [{"role": "user", "content": "go"}]}
    with LiveServer(app) as server:
        rates = []
        for _ in range(3):
            deltas = 0
            start = time.perf_counter()
            with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=120) as response:
                for line in response.iter_lines():
                    if line == "event: content_block_delta":
                        deltas += 1
            rates.append(tokens / (time.perf_counter() - start))
            assert deltas > 0
    rate = statistics.median(rates)
    print(f"   {tokens:,} tokens per response, median of 3: {rate:,.0f} tokens/s "
          f"(goal ≥ 5,000: {'met' if rate >= 5000 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the slow untrimmed prefill")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=16)
    args = parser.parse_args()
    from trimkit.backends.mlx import MLXBackend
    from trimkit.testing.tinymodel import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model", layers=args.layers, hidden=args.hidden,
                                 heads=args.heads, head_dim=args.head_dim)
        backend = MLXBackend(str(model)).wait_ready(60)
        try:
            params = backend.profile.total_params or 0
            print(f"model: random llama, {args.layers} layers, hidden {args.hidden}, {params / 1e6:.1f} M parameters, "
                  f"context {backend.profile.context_window:,}, MLX on "
                  f"{__import__('mlx.core').core.default_device()}")
            ttft(backend, args.quick)
            cache_reuse(backend)
        finally:
            backend.close()
    sse_throughput()


if __name__ == "__main__":
    main()
