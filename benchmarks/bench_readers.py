"""The reading side alone: every dialect's reader on scripted output, beside mlx-lm's parsers.

No model is loaded: each family's output is written as its model writes it
(trimkit.testing.call_scenarios) and read back through ResponseBuilder. Printed:

1. dialect × case (single call, parallel calls, typed arguments, value containing
   markup, sloppy JSON, thinking on, thinking off, stream split at every position):
   trimkit's pass/total, and beside it mlx-lm's tool parser on the same turns where
   mlx-lm has one ("-": no such case for the family, or no mlx-lm parser);
2. throughput: MB/s of each reader on a megabyte of ordinary agent output and on a
   megabyte of adversarial text, fed in 4-character chunks, with the characters the
   scanners looked at per character of input.

The server path (real tokenizers, forced generation, SSE) is benchmarks/bench_families.py.

    python benchmarks/bench_readers.py [--details]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trimkit.testing.call_scenarios import FAMILY_CASES, TOOLS, WRITERS, Looks, cases, check  # noqa: E402
from trimkit.toolcalls.dialects import dialect_named  # noqa: E402

MLX_PARSERS = {"gemma4": "gemma4", "glm47": "glm47", "minimax_m2": "minimax_m2", "qwen3_coder": "qwen3_coder",
               "hermes": "json_tools", "mistral": "mistral"}  # fmt: skip
MLX_CASES = ("single call", "parallel calls", "typed arguments", "value containing markup", "sloppy JSON")
OPENAI_TOOLS = [{"type": "function", "function": {"name": t.name, "parameters": t.input_schema}} for t in TOOLS]


def mlx_calls(dialect: str, turn: str) -> list:
    """What mlx-lm's server makes of a turn: each segment between its parser's markers, parsed."""
    module = importlib.import_module(f"mlx_lm.tool_parsers.{MLX_PARSERS[dialect]}")
    start, end = module.tool_call_start, module.tool_call_end
    out = []
    for piece in turn.split(start)[1:]:
        parsed = module.parse_tool_call(piece.split(end)[0] if end else piece, OPENAI_TOOLS)
        for call in parsed if isinstance(parsed, list) else [parsed]:
            arguments = call["arguments"]
            out.append((call["name"], json.loads(arguments) if isinstance(arguments, str) else arguments))
    return out


def mlx_passes(case) -> bool:
    expected = [block for block in case.expected if isinstance(block, tuple) and block[0] != "thinking"]
    try:
        return mlx_calls(case.dialect, case.turn) == expected
    except Exception:  # mlx-lm raises on what it cannot parse; the call is then lost
        return False


def table(details: list[str]) -> None:
    try:
        importlib.import_module("mlx_lm.tool_parsers")
        have_mlx = True
    except ImportError:
        have_mlx = False
    header = ["dialect", *FAMILY_CASES]
    rows = [header]
    totals = [0, 0, 0, 0]
    for name in WRITERS:
        row = [name]
        for kind in FAMILY_CASES:
            group = cases(name)[kind]
            if not group:
                row.append("-")
                continue
            ok = 0
            for case in group:
                problem = check(case)
                ok += problem is None
                if problem:
                    details.append(f"{name} / {kind} / {case.label}: {problem}")
            cell = f"{ok}/{len(group)}"
            totals[0] += ok
            totals[1] += len(group)
            if have_mlx and name in MLX_PARSERS and kind in MLX_CASES:
                mlx_ok = sum(mlx_passes(case) for case in group)
                cell += f" ({mlx_ok}/{len(group)})"
                totals[2] += ok
                totals[3] += mlx_ok
            row.append(cell)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print("trimkit's readers, pass/total (in brackets: mlx-lm's parser on the same turns):\n")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    print(f"\nall: {totals[0]}/{totals[1]}")
    if have_mlx:
        print(f"where mlx-lm has a parser: trimkit {totals[2]} vs mlx-lm {totals[3]} cases passed")


def ordinary(name: str, size: int) -> str:
    writer = WRITERS[name]
    piece = (
        "I'll look at the project first, then change the function.\n\n"
        + writer.calls([("Bash", {"command": "grep -rn 'def main' src/ | head -20"})])
        + "\n"
        + writer.calls([("Write", {"file_path": "/work/a.py", "content": "def main():\n    return 1 < 2 and {'a': [1]}\n" * 8})])
    )
    return (piece * (size // len(piece) + 1))[:size]


ADVERSARIAL = (
    "<" * 100_000, "{" * 100_000, "</parameter>x" * 8_000, "<tool_call>" * 9_000, "<|tool_call>" * 8_000,
    "[TOOL_CALLS]" * 8_000, "<|channel|>" * 9_000, "<｜tool▁call▁begin｜>" * 5_000, '\\"' * 50_000,
)  # fmt: skip


def adversarial(size: int) -> str:
    text = "".join(ADVERSARIAL)
    return (text * (size // len(text) + 1))[:size]


def throughput(size: int) -> None:
    print(f"\nthroughput, {size / 1e6:.0f} MB fed in 4-character chunks (MB/s; looks per character):\n")
    print(f"{'dialect':<12} {'ordinary':>16} {'adversarial':>16}")
    for name in WRITERS:
        cells = []
        for text in (ordinary(name, size), adversarial(size)):
            reader = dialect_named(name).reader(TOOLS, thinking_open=False)
            with Looks() as looks:
                start = time.perf_counter()
                for i in range(0, len(text), 4):
                    reader.feed(text[i : i + 4])
                reader.finish()
                seconds = time.perf_counter() - start
            cells.append(f"{len(text) / seconds / 1e6:.2f}; {looks.count / len(text):.1f}")
        print(f"{name:<12} {cells[0]:>16} {cells[1]:>16}")


def print_end(details: list[str], started: float) -> None:
    """Why each failing case failed (the lines ``--details`` asks for), then how long the run took."""
    if details:
        print("\nfailures:")
        for line in details:
            print(" ", line)
    print(f"\n{time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--details", action="store_true", help="print why each failing case failed")
    parser.add_argument("--megabytes", type=float, default=1.0, help="size of the throughput texts")
    args = parser.parse_args()
    details: list[str] = []
    started = time.perf_counter()
    table(details)
    throughput(int(args.megabytes * 1_000_000))
    print_end(details if args.details else [], started)


if __name__ == "__main__":
    main()
