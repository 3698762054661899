"""Constrained decoding figures, measured side by side in one run.

1. Valid tool calls: 200 ``tool_choice: any`` requests (Claude Code's first
   request, its 25 tools shown, the turn's words varied) through a live server
   with the ``anthropic`` SDK, on the closing model (random weights with a liking
   for closing tokens, :mod:`trimkit.testing.grammar_models`); the share whose
   ``tool_use`` inputs all validate against the tool's schema (``jsonschema``,
   formats checked), with and without the constraint.
2. Valid JSON: 100 of Claude Code's title requests on the plain tiny random
   model; the share whose text is JSON matching the schema, with and without.
3. Decode speed with a grammar ÷ without, on the tiny model (768 tokens) and on
   a 150 K-vocabulary model: free text under Claude Code's ``tool_choice: auto``
   grammar (the mask is computed on every token), and inside a forced call.
4. Compile time of the grammar for Claude Code's 25 tools: the first request
   (building the grammar text and compiling it; the tokenizer is built once per
   model, shown apart) and a cached one.

``python benchmarks/bench_constrain.py [--requests 200] [--titles 100]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures import claude_code as cc  # noqa: E402
from tests.fixtures.claude_code_tools import tools as claude_code_tools  # noqa: E402

DECODE_TOKENS = 256


def validator(schema: dict):
    import jsonschema

    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def valid_calls(client, n: int, max_tokens: int) -> tuple[int, int, set[str]]:
    """How many of ``n`` ``tool_choice: any`` requests gave only schema-valid calls; and the tools called."""
    tools = claude_code_tools()
    schemas = {t["name"]: t["input_schema"] for t in tools}
    good, cut, names = 0, 0, set()
    for i in range(n):
        request = cc.first_request(f"request {i}: look at the failing test")
        message = client.messages.create(
            model=request["model"], max_tokens=max_tokens, system=request["system"], messages=request["messages"],
            tools=tools, tool_choice={"type": "any"},
        )
        uses = [b for b in message.content if b.type == "tool_use"]
        names.update(u.name for u in uses)
        cut += message.stop_reason == "max_tokens"
        good += bool(uses) and all(u.name in schemas and not any(validator(schemas[u.name]).iter_errors(u.input))
                                   for u in uses)
    return good, cut, names


def valid_titles(client, n: int) -> tuple[int, float]:
    good, tokens = 0, []
    for i in range(n):
        request = cc.title_request(f"title {i}: make the parser stream")
        message = client.messages.create(
            model=request["model"], max_tokens=request["max_tokens"], system=request["system"],
            messages=request["messages"], extra_body={"output_config": request["output_config"]},
        )
        text = "".join(b.text for b in message.content if b.type == "text")
        tokens.append(message.usage.output_tokens)
        try:
            value = json.loads(text)
        except ValueError:
            continue
        good += not any(validator(request["output_config"]["format"]["schema"]).iter_errors(value))
    return good, statistics.mean(tokens)


def serve(model_dir: Path, **settings):
    import anthropic

    from trimkit.backends.mlx import MLXBackend
    from trimkit.server import ServerSettings, create_app
    from trimkit.testing import LiveServer

    backend = MLXBackend(str(model_dir)).wait_ready()
    app = create_app(ServerSettings(backend="mlx", model=str(model_dir), tier="large", **settings), backend=backend)
    server = LiveServer(app).__enter__()
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=600)
    return client, lambda: (server.__exit__(None, None, None), backend.close())


def decode_ratio(model_dir: Path, label: str) -> None:
    """Decode tokens/s with a grammar ÷ without, measured on the same prompt, three runs each."""
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from trimkit.backends.mlx_grammar import GrammarEngine
    from trimkit.constrain import constraint_for, lark_grammar
    from trimkit.wire import Tool, ToolChoice

    model, tokenizer = load(str(model_dir))
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tools = [Tool(**t) for t in claude_code_tools()]
    engine = GrammarEngine(tokenizer, vocab)
    start = time.perf_counter()
    engine.tokenizer  # built once per model
    tokenizer_s = time.perf_counter() - start
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me about the parser."}],
                                           add_generation_prompt=True)
    grammars = {
        "free text (auto)": lark_grammar(constraint_for(tools, None, None)),
        "inside a call (any)": lark_grammar(constraint_for(tools, ToolChoice(type="any"), None)),
    }

    def tps(grammar: str | None) -> float:
        processors = [engine.processor(grammar)] if grammar else None
        mx.random.seed(0)
        last = None
        for last in stream_generate(model, tokenizer, prompt, max_tokens=DECODE_TOKENS, sampler=make_sampler(1.0),
                                    logits_processors=processors):
            pass
        return last.generation_tps

    tps(None)  # warm up
    for name, grammar in grammars.items():
        engine.matcher(grammar)  # compiled before timing
        base = statistics.median(tps(None) for _ in range(3))
        held = statistics.median(tps(grammar) for _ in range(3))
        print(f"  {label:<24} {name:<22} {base:8.0f} → {held:8.0f} tokens/s   ratio {held / base:.2f}")
    print(f"  {label:<24} llguidance tokenizer built in {tokenizer_s:.2f} s (once per model)")


def compile_times(model_dir: Path) -> None:
    from mlx_lm import load

    from trimkit.backends.mlx_grammar import GrammarEngine
    from trimkit.constrain import constraint_for, grammar as grammar_module, lark_grammar
    from trimkit.wire import Tool, ToolChoice

    _, tokenizer = load(str(model_dir))
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    engine = GrammarEngine(tokenizer, vocab)
    engine.tokenizer
    for choice, label in ((None, "auto"), (ToolChoice(type="any"), "any")):
        grammar_module._cache.clear()
        tools = [Tool(**t) for t in claude_code_tools()]
        start = time.perf_counter()
        text = lark_grammar(constraint_for(tools, choice, None))
        built = time.perf_counter() - start
        engine.matcher(text)
        first = time.perf_counter() - start
        start = time.perf_counter()
        engine.matcher(lark_grammar(constraint_for([Tool(**t) for t in claude_code_tools()], choice, None)))
        cached = time.perf_counter() - start
        print(f"  tool_choice {label:<4} ({len(text):,} characters): first request {first * 1e3:6.1f} ms "
              f"(grammar text {built * 1e3:.1f} ms), cached {cached * 1e3:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--titles", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=1500)
    args = parser.parse_args()

    from trimkit.testing.grammar_models import build_big_vocab_model, build_closing_model
    from trimkit.testing.tinymodel import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="trimkit-bench-constrain-"))
    closing, tiny, big = build_closing_model(tmp / "closing"), build_tiny_model(tmp / "tiny"), build_big_vocab_model(tmp / "big")

    print(f"1. tool_choice any over Claude Code's 25 tools, {args.requests} requests (closing model):")
    for label, settings in (("constrained", {}), ("unconstrained", {"constrain_tool_choice": False})):
        count = args.requests if label == "constrained" else min(args.requests, 20)
        client, close = serve(closing, **settings)
        start = time.perf_counter()
        good, cut, names = valid_calls(client, count, args.max_tokens)
        close()
        print(f"  {label:<14} schema-valid tool_use {good}/{count} = {100 * good / count:5.1f} %  "
              f"(cut by max_tokens {cut}, {len(names)} tools called, {time.perf_counter() - start:.0f} s)")

    print(f"\n2. title requests, {args.titles} (plain tiny random model):")
    for label, settings in (("constrained", {}), ("unconstrained", {"constrain_json_output": False})):
        count = args.titles if label == "constrained" else min(args.titles, 20)
        client, close = serve(tiny, **settings)
        good, mean_tokens = valid_titles(client, count)
        close()
        print(f"  {label:<14} schema-valid JSON {good}/{count} = {100 * good / count:5.1f} %  (mean {mean_tokens:.0f} tokens)")

    print(f"\n3. decode tokens/s with a grammar ÷ without ({DECODE_TOKENS} tokens, median of 3):")
    decode_ratio(tiny, "tiny (768 tokens)")
    decode_ratio(big, "150K vocabulary")

    print("\n4. compiling the grammar of Claude Code's 25 tools:")
    print(" tiny model:")
    compile_times(tiny)
    print(" 150K vocabulary:")
    compile_times(big)


if __name__ == "__main__":
    main()
