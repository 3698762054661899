"""Long sessions: cut events, cache reuse per turn and trimkit's own cost, this tree beside an older one.

    python benchmarks/bench_long_session.py                   # everything, against e2cbf4a (a few minutes)
    python benchmarks/bench_long_session.py --before none     # this tree alone
    python benchmarks/bench_long_session.py --before COMMIT --plot out.png --turns 100
    python benchmarks/bench_long_session.py --sections session --tokenizer corpus   # a realistic tokenizer

Every figure is measured in a fresh process per tree (the older tree is checked out
into a temporary git worktree, its ``trimkit`` first on the path; the sessions come
from this tree's tests/fixtures), so both run the same requests in the same run:

1. **A long session through the server** on the tiny random MLX model: a 100-turn
   scripted agent session (Claude Code's 88 KB first request, then tool calls with
   results of a few kilobytes; ``tests/fixtures/long_session.py``) in a 16,384-token
   window, a quarter kept for output, every answer forced to end at once, the prefill
   target off (the tiny model's measured speed moves with the machine's load; the
   prefill target is measured in section 3, on a simulated cache). Per turn:
   the share of the prompt read from the KV cache (``cache_read_input_tokens``), the
   share of the previous prompt reused, the turns the budget dropped; the cut events;
   the prompt kept. Drawn to a PNG (matplotlib) or, without it, in the terminal.
2. **trimkit's own cost per request** (trim, render, tokenize for counting and for
   generation) on the 88 KB request and the turns after it, against each turn's
   prefill time on the same model: the first request of a process (its prompt
   prefilled whole) and later turns (only their new tokens prefilled).
3. **The library's figures from issue 13**: how often the cut moves in a 100-turn
   session of Read calls with 2,400-character results in a 16 K window (the window
   alone; a prefill target at 500 tokens/s), and what requests 13–15 of a 45-turn
   Claude Code session keep at 500 tokens/s in a 32 K window with 0 or 5,000 tokens cached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # this tree's tests/fixtures and benchmarks; trimkit itself comes from PYTHONPATH

from benchmarks.older_tree import older_tree  # noqa: E402

BEFORE = "e2cbf4a"  # the budget before issue 13: steps of a quarter of the target, all-or-nothing prefill cuts
WINDOW = 16_384


# --------------------------------------------------------------------------- measured in a child process


def tiny_backend(directory: Path):
    from trimkit.backends.mlx import MLXBackend

    return MLXBackend(str(directory)).wait_ready(timeout=120)


def ending_at_once(eos: int):
    """A logits processor that lets the model say only end-of-sequence: every answer is one token."""
    import mlx.core as mx

    def only_eos(tokens, logits):
        return mx.where(mx.arange(logits.shape[-1]) == eos, mx.zeros_like(logits), -mx.inf)

    return lambda prompt: [only_eos]


def writing(reply: list[str], tokenizer, eos: int):
    """A logits processor that makes the model write ``reply[0]`` (as it is when generation starts), then
    end-of-sequence: the scripted assistant turn, generated as a real model's answer would be."""
    import mlx.core as mx

    def start(prompt):
        ids, step = tokenizer.encode(reply[0], add_special_tokens=False), [0]

        def next_only(tokens, logits):
            target = ids[step[0]] if step[0] < len(ids) else eos
            step[0] += 1
            return mx.where(mx.arange(logits.shape[-1]) == target, mx.zeros_like(logits), -mx.inf)

        return [next_only]

    return start


def assistant_turn(request: dict, native_tools: bool) -> str:
    """The text of ``request``'s last assistant message as the tree renders it for the model."""
    from trimkit.render import chat_for
    from trimkit.wire import decode_request

    chat = chat_for(decode_request(request), native_tools)
    assert chat[-2]["role"] == "assistant", [m["role"] for m in chat[-3:]]
    return chat[-2]["content"]


def measure_server(model_dir: Path, turns: int, window: int, answer: str = "end") -> dict:
    """Section 1: the session through a live server; per turn usage and the budget's dropped turns.

    ``answer``: ``end``, every answer ends at once (the scripted assistant turn then reaches the
    model as new prompt tokens); ``scripted``, the model is made to write the next request's
    assistant turn, so that turn is already in the KV cache, as a real model's answer is."""
    import httpx

    from tests.fixtures.long_session import agent_session
    from trimkit import Pipeline, hookimpl
    from trimkit.testing import live_app

    backend = tiny_backend(model_dir)
    requests = agent_session(turns + 1)
    reply = [""]
    if answer == "scripted":
        native = bool(getattr(getattr(backend, "profile", None), "native_tools", False))
        backend.logits_processors = writing(reply, backend.tokenizer, backend.tokenizer.eos_token_id)
    else:
        backend.logits_processors = ending_at_once(backend.tokenizer.eos_token_id)

    class Dropped:
        turns: list[int] = []

        @hookimpl
        def trimkit_trimmed(self, result):
            self.turns.append(result.carry.budget.dropped_turns)

    observer = Dropped()
    usage, seconds = [], []
    stages = {"budget": {"target_prefill_seconds": 0}}  # in the pipeline too: older servers ignored settings.stages then
    with live_app("mlx", backend, pipeline=Pipeline(stages, plugins=[observer]), model=str(backend.path),
                  context_window=window, stages=stages) as server:
        for k, body in enumerate(requests[:-1]):
            if answer == "scripted":
                reply[0] = assistant_turn(requests[k + 1], native)
            started = time.perf_counter()
            response = httpx.post(server.url + "/v1/messages", json={**body, "max_tokens": 32000, "stream": False},
                                  timeout=600)
            seconds.append(time.perf_counter() - started)
            response.raise_for_status()
            usage.append(response.json()["usage"])
    backend.close()
    return {"usage": usage, "dropped": observer.turns, "seconds": seconds}


def measure_cost(model_dir: Path, turns: int) -> dict:
    """Section 2: trimkit's time per request and the model's prefill time for the same turn."""
    import asyncio

    from tests.fixtures.long_session import agent_session
    from trimkit.backends.base import Finished, GenerationParams
    from trimkit.server import ServerSettings
    from trimkit.server.messages import MessageService

    backend = tiny_backend(model_dir)
    backend.logits_processors = ending_at_once(backend.tokenizer.eos_token_id)
    service = MessageService(ServerSettings(backend="mlx", model=str(backend.path)), backend)

    async def prefill(chat) -> Finished:
        async for event in backend.generate(chat, GenerationParams(max_tokens=1)):
            if isinstance(event, Finished):
                return event

    rows = []
    for body in agent_session(turns):
        raw = json.dumps(body).encode()
        started = time.perf_counter()
        prep = service.prepare(raw)
        backend.prompt_tokens(prep.chat)  # what generation tokenizes before it prefills
        trimkit_ms = (time.perf_counter() - started) * 1000
        done = asyncio.run(prefill(prep.chat))
        prefill_ms = 1000 * done.input_tokens / done.prefill_tps if done.prefill_tps else float("nan")
        rows.append({"trimkit_ms": trimkit_ms, "prefill_ms": prefill_ms, "prefilled": done.input_tokens,
                     "cached": done.cached_tokens, "bytes": len(raw)})
    backend.close()
    return {"rows": rows}


def measure_library(model_dir: Path) -> dict:
    """Section 3: the issue's library figures, on the budget stage alone and on the whole pipeline."""
    from tests.fixtures import claude_code as cc
    from tests.fixtures.long_session import read_session
    from trimkit import ModelProfile, Pipeline, PromptTooLong

    pipeline = Pipeline(entry_points=False)

    def moves(prefill_tps: float | None, cache: bool = False, remember: bool = True) -> tuple[int, float]:
        """Cut moves in the Read session, and the median share of each prompt a prefix cache holding
        the previous one would serve. With ``cache`` the budget may ask that cache, as a server's does,
        and (``remember``, where the tree has it) the server remembers the budget's cuts."""
        from trimkit.render import prompt_text

        profile = ModelProfile(name="estimate", context_window=WINDOW, prefill_tps=prefill_tps or 1e12, tier="small")
        held = [""]
        if cache:
            profile.cached_prefix = lambda request: profile.count_tokens(shared(prompt_text(request), held[0]))
            if remember and hasattr(profile, "recent_cuts"):
                from trimkit.profile import RecentCuts

                profile.recent_cuts = RecentCuts()
        options = {} if prefill_tps else {"target_prefill_seconds": 0}
        states, shares = [], []
        for body in read_session(100, result_chars=2400):
            result = pipeline.run_stage("budget", body, profile, options=options)
            budget, text = result.carry.budget, prompt_text(result.request)
            states.append((budget.dropped_turns, budget.cut_results > 0))
            shares.append(len(shared(text, held[0])) / len(text))
            held[0] = text
        return sum(a != b for a, b in zip(states, states[1:])), statistics.median(shares[1:])

    def shared(a: str, b: str) -> str:
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return a[:n]

    profile = ModelProfile.from_model_dir(model_dir, context_window=32_768, prefill_tps=500.0, tier="small")
    table = []
    requests = cc.session_prefixes(45)
    for k in (13, 14, 15):
        for cached in (0, 5000):
            try:
                budget = pipeline.trim(requests[k], profile, cached_tokens=cached).carry.budget
                table.append([k, cached, budget.prompt_tokens, budget.dropped_turns])
            except PromptTooLong as exc:
                table.append([k, cached, str(exc), None])
    kept = [pipeline.trim(r, profile).carry.budget.prompt_tokens for r in requests]
    return {"window": moves(None), "prefill": moves(500.0), "prefill_cached": moves(500.0, cache=True),
            "prefill_forgetful": moves(500.0, cache=True, remember=False), "table": table, "kept": kept}


def child(section: str, model_dir: Path, turns: int, window: int, answer: str) -> None:
    if section == "server":
        out = measure_server(model_dir, turns, window, answer)
    elif section == "cost":
        out = measure_cost(model_dir, turns)
    else:
        out = measure_library(model_dir)
    import trimkit

    out["trimkit"] = str(Path(trimkit.__file__).parent)
    print("RESULT " + json.dumps(out))


# --------------------------------------------------------------------------- the parent: run, compare, print


def run_child(tree: Path, section: str, model_dir: Path, turns: int, window: int = WINDOW,
              answer: str = "end") -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", section, "--model-dir", str(model_dir),
               "--turns", str(turns), "--window", str(window), "--answer", answer]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{section} in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    assert Path(result["trimkit"]).resolve() == (tree / "src" / "trimkit").resolve(), result["trimkit"]
    return result


TOKENIZERS = ("tiny", "big", "corpus")


def build_model(tokenizer: str, path: Path) -> Path:
    """The tiny random MLX model with the chosen tokenizer (see the module's docstring)."""
    if tokenizer == "big":
        from trimkit.testing.grammar_models import build_big_vocab_model

        return build_big_vocab_model(path)
    if tokenizer == "corpus":
        from trimkit.testing.corpus_model import build_corpus_model

        return build_corpus_model(path)
    from trimkit.testing.tinymodel import build_tiny_model

    return build_tiny_model(path)


def describe_tokenizer(name: str, model_dir: Path) -> str:
    """Which tokenizer the figures are counted in, and how many characters a token it reads
    on the session's system prompt, on its exchanges (the assistant's words and tool call,
    the tool's result) and on the code that its Read results show, without line numbers."""
    from tests.fixtures import claude_code as cc
    from tests.fixtures.long_session import agent_exchange
    from tests.fixtures.sources import paths, python_module
    from trimkit.testing.corpus_model import chars_per_token

    system = cc.first_request(" ")["system"]
    system = system if isinstance(system, str) else "".join(block["text"] for block in system)
    exchanges = []
    for i in range(100):
        assistant, user = agent_exchange(i)
        say, call = assistant["content"]
        exchanges.append(say["text"] + json.dumps(call["input"]) + user["content"][0]["content"])
    code = "".join(python_module(paths("src", 1, i)[0], 900 + (i * 389) % 1400) for i in range(0, 100, 5))
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    return (f"tokenizer: {name} ({vocab:,} tokens); characters a token on the system prompt "
            f"{chars_per_token(model_dir, system):.2f}, on the session's exchanges "
            f"{chars_per_token(model_dir, ''.join(exchanges)):.2f}, on the code its Read results show "
            f"{chars_per_token(model_dir, code):.2f}")


def session_figures(result: dict) -> dict:
    usage, dropped = result["usage"], result["dropped"]
    totals = [u["input_tokens"] + u["cache_read_input_tokens"] for u in usage]
    share = [u["cache_read_input_tokens"] / t for u, t in zip(usage, totals)]
    reused = [min(1.0, usage[k]["cache_read_input_tokens"] / totals[k - 1]) for k in range(1, len(usage))]
    events = [k for k in range(1, len(usage)) if dropped[k] != dropped[k - 1]]
    calm = [share[k] for k in range(1, len(usage)) if k not in events]
    settled = [share[k] for k in range(events[0] + 1, len(usage)) if k not in events] if events else calm
    return {
        "turns": len(usage) - 1, "totals": totals, "share": share, "events": events,
        "median_share": statistics.median(share[1:]), "min_share_calm": min(calm) if calm else float("nan"),
        "min_share_settled": min(settled) if settled else float("nan"),
        "median_reused": statistics.median(reused), "min_reused_calm": min(
            (reused[k - 1] for k in range(1, len(usage)) if k not in events), default=float("nan")),
        "kept_min": min(totals[10:]), "kept_max": max(totals), "base": totals[0],
        "seconds": sum(result["seconds"]),
    }


def draw(figures: dict[str, dict], path: Path, window: int) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return terminal_chart(figures)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for name, f in figures.items():
        history = [t - f["base"] for t in f["totals"]]
        top.plot(range(len(history)), history, label=f"{name}: history tokens kept")
        bottom.plot(range(1, len(f["share"])), [100 * s for s in f["share"][1:]], label=f"{name}: prompt read from cache")
        for k in f["events"]:
            top.axvline(k, color=top.lines[-1].get_color(), alpha=0.15)
    top.set_ylabel("tokens after the fixed part")
    top.set_title(f"A {next(iter(figures.values()))['turns']}-turn agent session, {window:,}-token window "
                  "(tiny MLX model); lines mark cut events")
    top.legend(loc="upper left")
    bottom.set_ylabel("% of the prompt")
    bottom.set_xlabel("turn")
    bottom.set_ylim(0, 100)
    bottom.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"   chart written to {path}"


def terminal_chart(figures: dict[str, dict], height: int = 8) -> str:
    lines = []
    for name, f in figures.items():
        history = [t - f["base"] for t in f["totals"]]
        top = max(history) or 1
        lines.append(f"   {name}: history tokens kept per turn (top = {top:,}); ^ marks a cut event")
        for row in range(height, 0, -1):
            lines.append("   |" + "".join("#" if h >= top * (row - 0.5) / height else " " for h in history))
        lines.append("   +" + "".join("^" if k in f["events"] else "-" for k in range(len(history))))
    return "\n".join(lines)


ANSWERS = {"end": "every answer ends at once", "scripted": "the model writes each scripted assistant turn"}


def print_session(figures: dict[str, dict], window: int, answer: str = "end") -> None:
    print(f"1. a {next(iter(figures.values()))['turns']}-turn agent session through the server, tiny MLX model, "
          f"{window:,}-token window (a quarter kept for output), {ANSWERS[answer]}")
    print(f"   {'':<10}{'cut events':>11}{'median % cached':>17}{'min % cached':>14}{'after 1st cut':>15}"
          f"{'median % prev.':>16}{'min % prev.':>13}{'prompt kept':>16}{'run':>8}")
    print(f"   {'':<10}{'':>11}{'(goal >= 95)':>17}{'(no cut)':>14}{'(no cut)':>15}{'reused':>16}{'(no cut)':>13}"
          f"{'after turn 10':>16}")
    for name, f in figures.items():
        kept = f"{f['kept_min']:,}–{f['kept_max']:,}"
        print(f"   {name:<10}{len(f['events']):>11}{100 * f['median_share']:>17.1f}{100 * f['min_share_calm']:>14.1f}"
              f"{100 * f['min_share_settled']:>15.1f}{100 * f['median_reused']:>16.1f}{100 * f['min_reused_calm']:>13.1f}"
              f"{kept:>16}{f['seconds']:>7.0f}s")
    for name, f in figures.items():
        gaps = [b - a for a, b in zip(f["events"], f["events"][1:])]
        print(f"   {name}: cut events at turns {f['events']} (turns between: {min(gaps, default=0)}–{max(gaps, default=0)})")


def cost_of(runs: list[dict]) -> dict:
    """Several processes' rows merged: the first request of each, and every later turn."""
    return {"first": [run["rows"][0] for run in runs], "later": [row for run in runs for row in run["rows"][2:]]}


def print_cost(costs: dict[str, dict]) -> None:
    print("2. trimkit's own cost per request (trim, render, tokenize) on the 88 KB request and the turns after it,")
    print("   against each turn's prefill time on the same model")
    print(f"   (medians; the first request of {len(next(iter(costs.values()))['first'])} fresh processes each)")
    print(f"   {'':<10}{'first request of a process':>30}{'later turns':>34}")
    print(f"   {'':<10}{'trimkit ms':>11}{'prefill ms':>11}{'ratio':>8}{'trimkit ms':>14}{'prefill ms':>11}{'ratio':>8}"
          f"{'new tokens':>12}")
    for name, c in costs.items():
        cells = []
        for rows in (c["first"], c["later"]):
            cells += [statistics.median(r["trimkit_ms"] for r in rows), statistics.median(r["prefill_ms"] for r in rows),
                      statistics.median(r["trimkit_ms"] / r["prefill_ms"] for r in rows)]
        new = statistics.median(r["prefilled"] for r in c["later"])
        print(f"   {name:<10}{cells[0]:>11.1f}{cells[1]:>11.1f}{cells[2]:>8.3f}{cells[3]:>14.1f}{cells[4]:>11.1f}"
              f"{cells[5]:>8.3f}{new:>12,.0f}")


def print_library(results: dict[str, dict]) -> None:
    print("3. issue 13's library figures (request sizes in the tiny model's tokens)")
    print(f"   100 turns of Read calls, 2,400-character results, {WINDOW:,} window (estimated tokens): cut moves,")
    print("   and the median share of a prompt that a cache holding the previous prompt serves")
    print(f"     {'':<10}{'window alone':>18}{'prefill 500 tok/s':>22}{'the same, the budget':>24}{'the same, no':>18}")
    print(f"     {'':<10}{'':>18}{'nothing cached':>22}{'asking the cache':>24}{'cuts remembered':>18}")
    for name, r in results.items():
        cells = [f"{m:>3}/100, {100 * share:4.1f} %"
                 for m, share in (r["window"], r["prefill"], r["prefill_cached"], r["prefill_forgetful"])]
        print(f"     {name:<10}{cells[0]:>18}{cells[1]:>22}{cells[2]:>24}{cells[3]:>18}")
    print("   a 45-turn Claude Code session, 32,768 window, 500 tokens/s: tokens kept (turns dropped)")
    print(f"     {'request':>9}{'cached':>8}" + "".join(f"{name:>20}" for name in results))
    rows = {name: r["table"] for name, r in results.items()}
    for i, (k, cached, *_rest) in enumerate(next(iter(rows.values()))):
        cells = [f"{t[i][2]:,} ({t[i][3]})" if t[i][3] is not None else "too long" for t in rows.values()]
        print(f"     {k:>9}{cached:>8}" + "".join(f"{cell:>20}" for cell in cells))
    for name, r in results.items():
        kept = r["kept"]
        print(f"     {name:<10} kept by requests 10–45 with nothing cached: {min(kept[10:]):,}–{max(kept[10:]):,} tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="commit to compare with, or 'none'")
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--also-window", type=int, default=32_768,
                        help="a second window for this tree alone (0: none)")
    parser.add_argument("--plot", type=Path, default=ROOT / ".benchmarks" / "long_session.png")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes measuring the cost per request")
    parser.add_argument("--sections", default="session,cost,library", help="which of session, cost, library to run")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="tiny",
                        help="the tiny model's tokenizer: its own (tiny), grown by random merges (big), "
                             "or trained on the Python standard library (corpus)")
    parser.add_argument("--answer", choices=list(ANSWERS), default="end",
                        help="section 1: every answer ends at once (end), or the model writes the scripted "
                             "assistant turn, which the next request then finds in the cache (scripted)")
    parser.add_argument("--child", choices=["server", "cost", "library"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model_dir, args.turns, args.window, args.answer)
        return
    with tempfile.TemporaryDirectory(prefix="trimkit-bench-") as tmp, older_tree(args.before, Path(tmp) / "before") as before:
        trees = {"now": ROOT}
        if before is not None:
            trees[args.before[:9]] = before
        model_dir = Path(tmp) / "tiny-model"
        sys.path.insert(0, str(ROOT / "src"))
        build_model(args.tokenizer, model_dir)
        print(describe_tokenizer(args.tokenizer, model_dir), flush=True)
        sections = args.sections.split(",")
        if "session" in sections:
            sessions = {name: session_figures(run_child(tree, "server", model_dir, args.turns, args.window,
                                                        args.answer))
                        for name, tree in trees.items()}
            print_session(sessions, args.window, args.answer)
            print(draw(sessions, args.plot, args.window))
            if args.also_window:
                print_session({"now": session_figures(run_child(ROOT, "server", model_dir, args.turns,
                                                                args.also_window, args.answer))}, args.also_window, args.answer)
            print(flush=True)
        if "cost" in sections:
            print_cost({name: cost_of([run_child(tree, "cost", model_dir, 12) for _ in range(args.repeat)])
                        for name, tree in trees.items()})
            print(flush=True)
        if "library" in sections:
            print_library({name: run_child(tree, "library", model_dir, args.turns) for name, tree in trees.items()})


if __name__ == "__main__":
    main()
