"""Compactions per 60-turn session through real Claude Code, before and after, side by side.

    python benchmarks/bench_compaction.py [--steps 60] [--window 32768] [--versions pinned,newest]

A scripted model (trimkit.testing.sessions.ReadingSession) reads sixty files of about
3,000 tokens each, one per turn, through a trimkit server with a 32 K window; Claude Code
runs with ``trimkit launch claude``'s environment. "before" is what launch and the
pipeline did until now: the real window as Claude Code's window (so it compacts at
window - output - 13,000) and the files Claude Code puts back after a compaction kept
whole; "after" is launch's environment now (the window plus that 13,000-token buffer)
and the reminders stage's default for those files (their names on small tiers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trimkit.cli.launch import claude_env, output_tokens  # noqa: E402
from trimkit.testing.clients import CLAUDE_CODE, ClientUnavailable, binary_version, install  # noqa: E402
from trimkit.testing.sessions import run_session  # noqa: E402

BEFORE_STAGES = {"reminders": {"actions": {"restored_files": "keep"}}}


def configurations(window: int) -> dict[str, tuple[dict[str, str], dict]]:
    after = claude_env("{url}", "trimkit", "replay", window, output_tokens(window))
    before = {**after, "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(window), "CLAUDE_CODE_AUTO_COMPACT_WINDOW": str(window)}
    return {"before": (before, BEFORE_STAGES), "after": (after, {})}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--window", type=int, default=32_768)
    parser.add_argument("--tokens", type=int, default=3_000, help="tokens per file read")
    parser.add_argument("--versions", default="pinned,newest")
    args = parser.parse_args()
    print(f"{args.steps} turns, each reading a file of ~{args.tokens:,} tokens, on a {args.window:,}-token window\n")
    print(f"{'Claude Code':<13}{'setup':<8}{'compactions':>12}{'back to back':>14}{'turns done':>12}"
          f"{'largest prompt':>16}  ended")
    for version in args.versions.split(","):
        try:
            binary = install(CLAUDE_CODE, version)
        except ClientUnavailable as exc:
            print(f"{version:<13}skipped: {exc}")
            continue
        for name, (env, stages) in configurations(args.window).items():
            run = run_session(binary, env, args.steps, args.window, stages=stages, tokens=args.tokens)
            said = [line for line in run.output.splitlines() if line.strip() and not line.startswith("[claude-code:")]
            ended = "done" if run.exit_status == 0 else f"exit {run.exit_status}: {(said or [''])[0][:90]}"
            print(f"{binary_version(binary):<13}{name:<8}{run.compactions:>12}{'yes' if run.back_to_back else 'no':>14}"
                  f"{f'{run.steps_read}/{args.steps}':>12}{max(run.prompt_tokens, default=0):>16,}  {ended}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
