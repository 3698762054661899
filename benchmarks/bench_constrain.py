"""Constrained decoding figures, measured side by side in one run.

1. Valid tool calls: 200 ``tool_choice: any`` requests (Claude Code's 25 tools,
   all shown to the model at the large tier, a short system prompt and a varied
   user turn, so that the prefix cache serves the tools section and the run
   measures calls rather than prefill) through a live server with the
   ``anthropic`` SDK, on the closing model (random weights with a liking
   for closing tokens, :mod:`trimkit.testing.grammar_models`); the share whose
   ``tool_use`` inputs all validate against the tool's schema (``jsonschema``,
   formats checked), with and without the constraint.
2. Valid JSON: 100 of Claude Code's title requests on the plain tiny random
   model; the share whose text is JSON matching the schema, with and without.
3. Decode speed with a grammar ÷ without, on the tiny model (768 tokens) and on
   a 150 K-vocabulary model: free text under Claude Code's ``tool_choice: auto``
   grammar (the mask is computed on every token), and inside a forced call.
   Measured per second of the process's CPU time, which other work on a shared
   machine does not distort, and per second of wall-clock time (median of 5
   interleaved runs each).
4. Compile time of the grammar for Claude Code's 25 tools: the first request
   (building the grammar text and compiling it; the tokenizer is built once per
   model, shown apart) and a cached one.
5. Per model family (:mod:`trimkit.testing.families`: its special tokens and chat
   template, so the server renders tools and calls in the family's own format and
   constrains them in the same dialect): the share of schema-valid ``tool_use``
   over ``tool_choice: any`` requests on the family's random model with a liking
   for what ends its values and reasoning (``build_family_closing_model``), with
   and without the constraint, and over requests that name each tool in turn;
   schema-valid title JSON; the first request's grammar compile time for the
   family's dialect; decode tokens/s with the family's grammar ÷ without on the
   family's plain random model (CPU time, free text under ``auto`` and inside a
   forced call).

``python benchmarks/bench_constrain.py [--requests 200] [--titles 100] [--family-requests 50]``
``python benchmarks/bench_constrain.py --parts 5 --family-requests 20 --family-named 25 --family-titles 5``
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
RUNS = 5


def validator(schema: dict):
    import jsonschema

    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def valid_calls(client, n: int, max_tokens: int, *, named: bool = False) -> tuple[int, int, set[str]]:
    """How many of ``n`` ``tool_choice: any`` requests (``named``: request i names tool i of the list) gave
    only schema-valid calls, to the named tool where one is named; and the tools called."""
    tools = claude_code_tools()
    schemas = {t["name"]: t["input_schema"] for t in tools}
    good, cut, names = 0, 0, set()
    for i in range(n):
        if i and i % 20 == 0:
            print(f"    {i} requests, {good} valid", file=sys.stderr, flush=True)
        wanted = tools[i % len(tools)]["name"] if named else None
        message = client.messages.create(
            model="claude-opus-4-8", max_tokens=max_tokens, system="You are a coding agent. Use the tools.",
            messages=[{"role": "user", "content": f"Request {i}: find why the parser test fails."}],
            tools=tools, tool_choice={"type": "tool", "name": wanted} if named else {"type": "any"},
        )
        uses = [b for b in message.content if b.type == "tool_use"]
        names.update(u.name for u in uses)
        cut += message.stop_reason == "max_tokens"
        good += bool(uses) and all(u.name in schemas and u.name == (wanted or u.name)
                                   and not any(validator(schemas[u.name]).iter_errors(u.input)) for u in uses)
    return good, cut, names


def valid_titles(client, n: int, max_tokens: int) -> tuple[int, float]:
    good, tokens = 0, []
    for i in range(n):
        request = cc.title_request(f"title {i}: make the parser stream")
        message = client.messages.create(
            model=request["model"], max_tokens=max_tokens, system=request["system"],
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
    from trimkit.testing import live_app

    backend = MLXBackend(str(model_dir)).wait_ready()
    server = live_app("mlx", backend, model=str(model_dir), tier="large", **settings).__enter__()
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=600)
    return client, lambda: (server.__exit__(None, None, None), backend.close())


def decode_ratio(model_dir: Path, label: str, *, dialect: str = "xml", runs: int = RUNS,
                 tokens: int = DECODE_TOKENS, quiet: bool = False) -> dict[str, float]:
    """Decode tokens/s with a grammar ÷ without, measured on the same prompt, ``runs`` runs each, in
    ``dialect`` (its markers written as the tokenizer's special tokens); the CPU-time ratio per grammar."""
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from trimkit.backends.mlx_grammar import GrammarEngine
    from trimkit.constrain import constraint_for, lark_grammar, markers
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
    special = engine.special_ids(markers(dialect))
    grammars = {
        "free text (auto)": lark_grammar(constraint_for(tools, None, None, dialect=dialect), special),
        "inside a call (any)": lark_grammar(constraint_for(tools, ToolChoice(type="any"), None, dialect=dialect),
                                            special),
    }

    def speeds(grammar: str | None) -> tuple[float, float]:
        """Decode tokens per second of process CPU time and of wall-clock time."""
        processors = [engine.processor(grammar)] if grammar else None
        mx.random.seed(0)
        count, cpu, wall = 0, time.process_time(), time.perf_counter()
        for _ in stream_generate(model, tokenizer, prompt, max_tokens=tokens, sampler=make_sampler(1.0),
                                 logits_processors=processors):
            count += 1
        return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)

    speeds(None)  # warm up
    for grammar in grammars.values():
        engine.matcher(grammar)  # compiled before timing
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in ("none", *grammars)}
    for _ in range(runs):  # interleaved, so a busy spell hits every kind alike
        measured["none"].append(speeds(None))
        for name, grammar in grammars.items():
            measured[name].append(speeds(grammar))
    base_cpu, base_wall = (statistics.median(r[i] for r in measured["none"]) for i in (0, 1))
    ratios = {}
    for name in grammars:
        cpu, wall = (statistics.median(r[i] for r in measured[name]) for i in (0, 1))
        ratios[name] = cpu / base_cpu
        if not quiet:
            print(f"  {label:<18} {name:<20} CPU-time {base_cpu:6.0f} → {cpu:6.0f} tokens/s, ratio {cpu / base_cpu:.2f}"
                  f"   wall-clock {base_wall:6.0f} → {wall:6.0f}, ratio {wall / base_wall:.2f}")
    if not quiet:
        print(f"  {label:<24} llguidance tokenizer built in {tokenizer_s:.2f} s (once per model)")
    return ratios


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
    parser.add_argument("--max-tokens", type=int, default=1500, help="per tool_choice request")
    parser.add_argument("--title-max-tokens", type=int, default=4000,
                        help="per title request (Claude Code asks 32,000; unconstrained, noise runs to the limit)")
    parser.add_argument("--family-requests", type=int, default=50, help="tool_choice any requests per family")
    parser.add_argument("--family-named", type=int, default=25,
                        help="requests per family naming a tool (each names the next of Claude Code's 25)")
    parser.add_argument("--family-runs", type=int, default=3, help="decode-speed runs per family (0: not measured)")
    parser.add_argument("--family-titles", type=int, default=10, help="title requests per family")
    parser.add_argument("--families", default="", help="comma-separated families for part 5 (default: all)")
    parser.add_argument("--parts", default="12345", help="which figures to measure, e.g. 34")
    args = parser.parse_args()

    from trimkit.testing.grammar_models import build_big_vocab_model, build_closing_model
    from trimkit.testing.tinymodel import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="trimkit-bench-constrain-"))
    closing = build_closing_model(tmp / "closing") if "1" in args.parts else None
    tiny = build_tiny_model(tmp / "tiny") if set("234") & set(args.parts) else None
    big = build_big_vocab_model(tmp / "big") if set("34") & set(args.parts) else None

    if "1" in args.parts:
        calls_figure(closing, args)
    if "2" in args.parts:
        titles_figure(tiny, args)
    if "3" in args.parts:
        print(f"\n3. decode tokens/s with a grammar ÷ without ({DECODE_TOKENS} tokens, median of {RUNS}):")
        decode_ratio(tiny, "tiny (768 tokens)")
        decode_ratio(big, "150K vocabulary")
    if "4" in args.parts:
        print("\n4. compiling the grammar of Claude Code's 25 tools:")
        print(" tiny model:")
        compile_times(tiny)
        print(" 150K vocabulary:")
        compile_times(big)
    if "5" in args.parts:
        families_figure(tmp, args)


def calls_figure(closing: Path, args) -> None:
    print(f"1. tool_choice any over Claude Code's 25 tools, {args.requests} requests (closing model):")
    for label, settings in (("constrained", {}), ("unconstrained", {"constrain_tool_choice": False})):
        count = args.requests if label == "constrained" else min(args.requests, 20)
        client, close = serve(closing, **settings)
        start = time.perf_counter()
        good, cut, names = valid_calls(client, count, args.max_tokens)
        close()
        print(f"  {label:<14} schema-valid tool_use {good}/{count} = {100 * good / count:5.1f} %  "
              f"(cut by max_tokens {cut}, {len(names)} tools called, {time.perf_counter() - start:.0f} s)")


def titles_figure(tiny: Path, args) -> None:
    print(f"\n2. title requests, {args.titles} (plain tiny random model, max_tokens {args.title_max_tokens}):")
    for label, settings in (("constrained", {}), ("unconstrained", {"constrain_json_output": False})):
        count = args.titles if label == "constrained" else min(args.titles, 10)
        client, close = serve(tiny, **settings)
        good, mean_tokens = valid_titles(client, count, args.title_max_tokens)
        close()
        print(f"  {label:<14} schema-valid JSON {good}/{count} = {100 * good / count:5.1f} %  (mean {mean_tokens:.0f} tokens)")


def families_figure(tmp: Path, args) -> None:
    """Part 5: each family's random model, its own format, constrained in its own dialect."""
    from trimkit.testing.families import FAMILIES, build_family_model
    from trimkit.testing.grammar_models import build_family_closing_model

    names = [n for n in args.families.split(",") if n] or list(FAMILIES)
    n, named, titles, runs = args.family_requests, args.family_named, args.family_titles, args.family_runs
    print(f"\n5. per family, over Claude Code's 25 tools (family closing model): {n} tool_choice any requests, {named}"
          f" naming a tool, {titles} title requests; decode tokens/s (CPU time) with ÷ without on the plain family"
          f" model, {DECODE_TOKENS // 2} tokens, median of {runs}, free text (auto) / inside a call:")
    print(f"  {'family':<14} {'dialect':<12} {'any: valid':>16} {'tools':>5} {'cut':>4} {'mean tok':>8}"
          f" {'named: valid':>16} {'unconstr.':>9} {'titles':>7} {'compile':>8} {'decode ratio':>13}")
    for name in names:
        model = build_family_closing_model(tmp / f"family-{name}", name)
        client, close = serve(model)
        start = time.perf_counter()
        good, cut, called, tokens = family_calls(client, n, args.max_tokens)
        good_named = valid_calls(client, named, args.max_tokens, named=True)[0] if named else 0
        title_good, _ = valid_titles(client, titles, 400) if titles else (0, 0.0)
        close()
        client, close = serve(model, constrain_tool_choice=False, constrain_tool_calls=False)
        loose = min(n, 5)
        free, _, _, _ = family_calls(client, loose, 300)
        close()
        compile_ms = family_compile_ms(model, FAMILIES[name].dialect)
        ratio = "-"
        if runs:
            plain = build_family_model(tmp / f"plain-{name}", name)
            ratios = decode_ratio(plain, name, dialect=FAMILIES[name].dialect, runs=runs, tokens=DECODE_TOKENS // 2,
                                  quiet=True)
            ratio = " / ".join(f"{r:.2f}" for r in ratios.values())
        print(f"  {name:<14} {FAMILIES[name].dialect:<12} {good:>4}/{n:<3} = {100 * good / n:5.1f} % {called:>5} {cut:>4}"
              f" {tokens:>8.0f} {good_named:>4}/{named:<3} = {100 * good_named / max(named, 1):5.1f} %"
              f" {free:>5}/{loose:<3} {title_good:>3}/{titles:<3} {compile_ms:>5.0f} ms {ratio:>13}"
              f"   ({time.perf_counter() - start:.0f} s)", flush=True)


def family_calls(client, n: int, max_tokens: int) -> tuple[int, int, int, float]:
    """``valid_calls`` with the mean output tokens: schema-valid requests, cut ones, tools called, tokens."""
    tokens: list[int] = []
    original = client.messages.create

    def create(**request):
        message = original(**request)
        tokens.append(message.usage.output_tokens)
        return message

    client.messages.create = create
    try:
        good, cut, names = valid_calls(client, n, max_tokens)
    finally:
        client.messages.create = original
    return good, cut, len(names), statistics.mean(tokens) if tokens else 0.0


def family_compile_ms(model_dir: Path, dialect: str) -> float:
    """Building and compiling the ``tool_choice: any`` grammar of Claude Code's tools for the family's tokenizer."""
    from mlx_lm.utils import load_tokenizer

    from trimkit.backends.mlx_grammar import GrammarEngine
    from trimkit.constrain import build, constraint_for, markers
    from trimkit.wire import Tool, ToolChoice

    config = json.loads((model_dir / "config.json").read_text())
    engine = GrammarEngine(load_tokenizer(model_dir, eos_token_ids=config["eos_token_id"]), config["vocab_size"])
    engine.tokenizer
    start = time.perf_counter()
    constraint = constraint_for([Tool(**t) for t in claude_code_tools()], ToolChoice(type="any"), None, dialect=dialect)
    engine.matcher(build(constraint, engine.special_ids(markers(dialect))))
    return (time.perf_counter() - start) * 1e3


if __name__ == "__main__":
    main()
