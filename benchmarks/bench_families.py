"""The model families through the real tokenizer, template and server path, side by side.

For each family (trimkit.testing.families) a tiny random model is built with the family's
special tokens and chat template. Then:

1. every case of trimkit.testing.family_cases is forced token by token through a live
   server and read back with the anthropic SDK, once as JSON and once streamed: the
   table gives pass/total per family and case ("-": not applicable);
2. a 20-turn Claude-Code-shaped session is trimmed and rendered through the family's
   template turn by turn, in the model's own convention and in trimkit's XML: the share of
   turns whose prompt starts with the previous turn's conversation, the share whose whole
   prompt (generation prompt included) extends the previous prompt, and the most tokens of
   the previous prompt a turn does not share (what the prefix cache must read again).

    python benchmarks/bench_families.py [--family NAME ...] [--details]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402

from benchmarks.bench_readers import print_end  # noqa: E402
from tests.fixtures import claude_code as cc  # noqa: E402
from trimkit.backends.mlx import MLXBackend, load_chat_tokenizer  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402
from trimkit.testing.family_cases import CASES, run_case  # noqa: E402
from trimkit.testing.families import FAMILIES, Script, build_family_model, family, session_prompts  # noqa: E402

TURNS = 20


def case_table(name: str, model_dir: Path, details: list[str]) -> list[str]:
    fam = family(name)
    script = Script(model_dir)
    backend = MLXBackend(str(model_dir), logits_processors=script).wait_ready(60)
    app = create_app(ServerSettings(backend="mlx", model=str(model_dir), tier="large"), backend=backend)
    cells = []
    try:
        with LiveServer(app) as server:
            client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0, timeout=120)
            for case in CASES:
                if not case.applies(fam):
                    cells.append("-")
                    continue
                passed = 0
                for stream in (False, True):
                    try:
                        outcome = run_case(client, script, fam, case, stream=stream,
                                           special_tokens=backend.special_tokens)
                    except Exception as exc:  # a server error is a failed case, not a failed benchmark
                        script.clear()
                        outcome = type("Outcome", (), {"ok": False, "detail": f"{type(exc).__name__}: {exc}"})
                    passed += outcome.ok
                    if not outcome.ok:
                        details.append(f"{name} / {case.name} / {'sse' if stream else 'json'}: {outcome.detail}")
                cells.append(f"{passed}/2")
    finally:
        backend.close()
    return cells


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_figures(model_dir: Path, *, native: bool, thinking: str = "adaptive") -> tuple[int, int, int, int]:
    tokenizer, template = load_chat_tokenizer(model_dir)
    rendered = session_prompts(template, cc.session_prefixes(TURNS), native=native, thinking=thinking)
    history = sum(after.startswith(bare) for (_, bare), (after, _) in zip(rendered, rendered[1:]))
    whole = sum(after.startswith(full) for (full, _), (after, _) in zip(rendered, rendered[1:]))
    ids = [tokenizer.encode(full, add_special_tokens=False) for full, _ in rendered]
    reread = max(len(a) - common_prefix(a, b) for a, b in zip(ids, ids[1:]))
    return history, whole, reread, len(ids[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families")
    parser.add_argument("--details", action="store_true", help="print why each failing case failed")
    args = parser.parse_args()
    names = args.family or list(FAMILIES)
    details: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: build_family_model(Path(tmp) / name, name) for name in names}
        header = ["family"] + [c.name for c in CASES]
        rows = [header] + [[name] + case_table(name, dirs[name], details) for name in names]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        print(f"cases through the server (JSON and SSE), pass/total:\n")
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        cells = [cell for row in rows[1:] for cell in row[1:] if cell != "-"]
        passed = sum(int(c.split("/")[0]) for c in cells)
        total = sum(int(c.split("/")[1]) for c in cells)
        print(f"\nall: {passed}/{total} ({100 * passed / max(total, 1):.0f} %)")

        print(f"\nprefix stability over a {TURNS}-turn Claude-Code-shaped session (thinking adaptive):\n")
        print(f"{'family':<14} {'convention':<10} {'conversation kept':>18} {'whole prompt extends':>21} "
              f"{'most tokens re-read':>20} {'last prompt':>12}")
        for name in names:
            for native in (True, False):
                history, whole, reread, last = prefix_figures(dirs[name], native=native)
                print(f"{name:<14} {'native' if native else 'xml':<10} {f'{history}/{TURNS}':>18} "
                      f"{f'{whole}/{TURNS}':>21} {reread:>20} {last:>12,}")
    print_end(details if args.details else [], started)


if __name__ == "__main__":
    main()
