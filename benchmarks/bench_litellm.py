"""trimkit's guardrail inside a real LiteLLM proxy: what the engine receives, and time to first token.

    python benchmarks/bench_litellm.py [--runs N]

Starts ``mlx_lm.server`` on the tiny random model (CPU, no prompt cache, so every
request is prefilled cold), a recording relay in front of it, and one LiteLLM proxy
(``trimkit.testing.litellm_proxy``, its own cached venv) that serves the engine
under two names: ``claude-trimmed``, which trimkit's guardrail is configured for
(small tier, 65,536-token window, as docs/litellm.md), and ``claude-plain``, which
it is not. The same Claude-Code-shaped first request (88 KB, 25 tools) goes through
both, side by side in one run, and the script prints:

1. what the engine received through each: characters of prompt text and tool
   schemas, request bytes, the prompt tokens the engine counted with the model's
   tokenizer, and the tokens of text plus tools by the same tokenizer (the tiny
   model's ChatML template does not render tools, so the engine's own count leaves
   them out; a model whose template renders tools would prefill them);
2. time to first token (the first ``content_block_delta`` of the SSE stream, read by
   the client) through LiteLLM with the guardrail ÷ without, median of ``--runs``
   interleaved runs, for that request and for a one-line request with nothing to trim
   (the guardrail's own cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import claude_code as cc  # noqa: E402

from trimkit.testing import spawn_mlx_lm_server, stop_server  # noqa: E402
from trimkit.testing.litellm_proxy import (  # noqa: E402
    install_litellm, install_trimkit, proxy_config, start_litellm, trimkit_guardrail,
)
from trimkit.testing.relay import RecordingRelay  # noqa: E402
from trimkit.testing.tinymodel import build_tiny_model  # noqa: E402

TIMEOUT = httpx.Timeout(1800.0)
ONE_LINE = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "say hello"}]}


def first_token_seconds(url: str, key: str, request: dict) -> float:
    """Seconds from sending ``request`` (streamed) to its first ``content_block_delta``.

    The tiny model is built never to end its turn early, so every answer has text; text
    the guardrail's reader holds back (a ``<`` that may open a call) counts until it is sent.
    """
    body = {**request, "stream": True}
    start = time.perf_counter()
    with httpx.stream("POST", url + "/v1/messages", json=body, timeout=TIMEOUT,
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01"}) as response:
        response.raise_for_status()
        lines = response.iter_lines()
        for line in lines:
            if line == "event: content_block_delta":
                elapsed = time.perf_counter() - start
                break
        else:
            raise RuntimeError("the stream ended without a content_block_delta")
        for _ in lines:  # read to the end, so the engine is free for the next run
            pass
    return elapsed


def tokens_of(tokenizer, exchange) -> int:
    texts = [m.get("content") or "" for m in exchange.body.get("messages", []) if isinstance(m.get("content"), str)]
    if exchange.body.get("tools"):
        texts.append(json.dumps(exchange.body["tools"], ensure_ascii=False))
    return sum(len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="time-to-first-token runs per side (median)")
    args = parser.parse_args()
    from tokenizers import Tokenizer

    python = install_litellm()
    install_trimkit(python, Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny-model", eos_bias=-30)  # answers run to max_tokens
        tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
        proc, engine = spawn_mlx_lm_server(model, "--prompt-cache-size", "0")
        try:
            with RecordingRelay(engine) as relay:
                params = {"model": "hosted_vllm/default_model", "api_base": relay.url + "/v1", "api_key": "none"}
                models = [{"model_name": name, "litellm_params": params} for name in ("claude-trimmed", "claude-plain")]
                guardrail = trimkit_guardrail({"claude-trimmed": {"tier": "small", "context_window": 65_536}})
                proxy = start_litellm(python, proxy_config(models, [guardrail]), workdir=Path(tmp))
                try:
                    measure(proxy, relay, tokenizer, args.runs)
                finally:
                    proxy.stop()
        finally:
            stop_server(proc)


def measure(proxy, relay, tokenizer, runs: int) -> None:
    request = {**cc.first_request(cc.EXAMPLE_PROMPT), "max_tokens": 4}
    sides = {"with the guardrail": "claude-trimmed", "without": "claude-plain"}
    print(f"Claude-Code-shaped first request: {len(json.dumps(request)):,} bytes, {len(request['tools'])} tools\n")
    print("1. what mlx_lm.server received through LiteLLM")
    print(f"   {'':20}{'text+tools chars':>17}{'request bytes':>15}{'engine prompt tok':>19}{'text+tools tok':>16}")
    received = {}
    for label, name in sides.items():
        first_token_seconds(proxy.url, proxy.master_key, {**request, "model": name})
        exchange = relay.exchanges[-1]
        received[label] = exchange
        print(f"   {label:20}{exchange.prompt_chars:>17,}{len(json.dumps(exchange.body)):>15,}"
              f"{exchange.usage.get('prompt_tokens', 0):>19,}{tokens_of(tokenizer, exchange):>16,}")
    w, wo = received["with the guardrail"], received["without"]
    print(f"   without ÷ with: {wo.prompt_chars / w.prompt_chars:.1f}× characters, "
          f"{tokens_of(tokenizer, wo) / tokens_of(tokenizer, w):.1f}× tokens (text+tools), "
          f"{wo.usage.get('prompt_tokens', 0) / max(w.usage.get('prompt_tokens', 1), 1):.1f}× engine prompt tokens")

    how = "one run each" if runs == 1 else f"median of {runs} interleaved runs"
    print(f"\n2. time to first token through LiteLLM ({how}, tiny MLX model on the CPU, cold prefill)")
    for title, body in (("Claude-Code-shaped request", request), ("one-line request, nothing to trim", ONE_LINE)):
        times: dict[str, list[float]] = {label: [] for label in sides}
        for _ in range(runs):
            for label, name in sides.items():
                times[label].append(first_token_seconds(proxy.url, proxy.master_key, {**body, "model": name}))
        with_hook, without = (statistics.median(times[label]) for label in sides)
        print(f"   {title}:")
        print(f"     with the guardrail {with_hook * 1000:10.1f} ms")
        print(f"     without            {without * 1000:10.1f} ms")
        print(f"     with ÷ without     {with_hook / without:10.3f}×")


if __name__ == "__main__":
    main()
