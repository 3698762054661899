"""Trimming today's real clients, case by case, before and after, side by side.

    python benchmarks/bench_clients.py [--before REV] [--versions pinned,newest]

Runs on the recordings of Claude Code (the pinned version and the newest on npm) and
OpenCode (trimkit.testing.recorder; made into the cache if missing). For every
recorded request: characters and tokens (estimated) before → after trimming on each
tier; then, for the agent-loop requests, which facts the client stated survive on
each tier: the working directory, platform, shell, OS, git branch and status,
CLAUDE.md (or AGENTS.md), the date, the user's words, appended system text and a
sub-agent's answer. "before" is the pipeline at git revision ``--before`` (by default
the one these changes started from), run from a temporary worktree in a subprocess
on the same recordings; "after" is this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from trimkit import ModelProfile, Pipeline, decode_request  # noqa: E402
from trimkit.render import prompt_text  # noqa: E402
from trimkit.request_kind import RequestKind  # noqa: E402
from trimkit.testing.clients import CLIENTS, ClientUnavailable  # noqa: E402
from trimkit.testing.recorder import FACTS, load_client_recordings, record_client, stated_facts  # noqa: E402

TIERS = ("small", "medium", "large")
BEFORE = "2dc6770"
TRIM_ALL = """
import json, sys
from trimkit import ModelProfile, Pipeline
from trimkit.render import prompt_text
pipeline = Pipeline()
out = []
for body in json.load(open(sys.argv[1])):
    row = {}
    for tier in ("small", "medium", "large"):
        try:
            r = pipeline.trim(body, ModelProfile.for_tier(tier))
            row[tier] = [r.report.after.chars, r.report.after.tokens, prompt_text(r.request)]
        except Exception as exc:
            row[tier] = [0, 0, f"failed: {type(exc).__name__}: {exc}"]
    out.append(row)
json.dump(out, open(sys.argv[2], "w"))
"""


def trim_all(bodies: list[dict]) -> list[dict]:
    pipeline = Pipeline()
    rows = []
    for body in bodies:
        row = {}
        for tier in TIERS:
            result = pipeline.trim(body, ModelProfile.for_tier(tier))
            row[tier] = [result.report.after.chars, result.report.after.tokens, prompt_text(result.request)]
        rows.append(row)
    return rows


def trim_all_at(revision: str, bodies: list[dict]) -> list[dict]:
    """The same trims with the pipeline of ``revision``, from a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="trimkit-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
                       check=True, capture_output=True)
        try:
            (Path(tmp) / "in.json").write_text(json.dumps(bodies))
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            subprocess.run([sys.executable, "-c", TRIM_ALL, str(Path(tmp) / "in.json"), str(Path(tmp) / "out.json")],
                           check=True, env=env, cwd=tmp)
            return json.loads((Path(tmp) / "out.json").read_text())
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def recordings(versions: list[str]) -> list:
    found = []
    for client, version in [("claude-code", v) for v in versions] + [("opencode", "pinned")]:
        try:
            found.extend(load_client_recordings(record_client(CLIENTS[client], version)))
        except ClientUnavailable as exc:
            print(f"{client} {version}: skipped ({exc})")
    return [r for r in found if r.is_messages]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=BEFORE, help=f"git revision to compare with (default {BEFORE})")
    parser.add_argument("--versions", default="pinned,newest", help="Claude Code versions")
    args = parser.parse_args()
    recs = recordings(args.versions.split(","))
    bodies = [r.body for r in recs]
    after, before = trim_all(bodies), trim_all_at(args.before, bodies)
    originals = [prompt_text(decode_request(b)) for b in bodies]
    sizes = [decode_request(b) for b in bodies]
    profile = ModelProfile()

    print(f"characters (tokens, estimated) of the prompt a model reads; before = {args.before}, after = this checkout\n")
    print(f"{'request':<46}{'kind':<11}{'untrimmed':>16}  " + "  ".join(f"{t + ' before → after':>30}" for t in TIERS))
    for rec, original, old, new in zip(recs, originals, before, after):
        cells = []
        for tier in TIERS:
            cells.append(f"{old[tier][0]:>7,} ({old[tier][1]:>5,}) → {new[tier][0]:>6,} ({new[tier][1]:>5,})")
        print(f"{rec.id:<46}{rec.kind.value:<11}{len(original):>8,} ({profile.count_tokens(original):>5,})  "
              + "  ".join(f"{c:>30}" for c in cells))

    print("\nfacts the client stated that the trimmed prompt keeps, agent-loop requests, small/medium/large tiers")
    print("(y kept, n lost, - not stated by this request; before | after)\n")
    print(f"{'request':<46}" + "".join(f"{name[:11]:>13}" for name in FACTS))
    lost = {"before": 0, "after": 0}
    for rec, original, old, new in zip(recs, originals, before, after):
        if rec.kind is not RequestKind.MAIN and rec.kind is not RequestKind.COMPACTION:
            continue
        stated = stated_facts(rec, original)
        cells = []
        for name in FACTS:
            if name not in stated:
                cells.append("-")
                continue
            marks = []
            for label, rows in (("before", old), ("after", new)):
                kept = "".join("y" if stated[name] in rows[tier][2] else "n" for tier in TIERS)
                lost[label] += kept.count("n")
                marks.append(kept)
            cells.append("|".join(marks))
        print(f"{rec.id:<46}" + "".join(f"{c:>13}" for c in cells))
    print(f"\nfacts lost (request × tier): before {lost['before']}, after {lost['after']}")
    marked = {label: sum("(no content)" in row[tier][2] for row in rows for tier in TIERS)
              for label, rows in (("before", before), ("after", after))}
    print(f"trimmed prompts holding an emptied message's \"(no content)\" (request × tier, of {len(recs) * len(TIERS)}): "
          f"before {marked['before']}, after {marked['after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
