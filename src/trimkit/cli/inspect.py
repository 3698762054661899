"""``trimkit inspect``: what each stage does to one request, as a table, JSON, a diff or the prompt."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from ..errors import ModelError
from ..profile import ModelProfile
from .errors import CommandError, Exit
from .main import _stage_config


def _read_request(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if path.is_dir():
        candidates = sorted(path.glob("*/original.json")) or sorted(path.glob("*.json"))
        if not candidates:
            raise CommandError(f"no captured requests in {path}", Exit.INPUT)
        path = max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror}", Exit.INPUT) from None


def _profile(args: argparse.Namespace) -> ModelProfile:
    if args.model:
        model_dir = Path(args.model)
        if not (model_dir / "config.json").exists():
            raise ModelError(f"{args.model} is not a model directory (no config.json)")
        try:
            profile = ModelProfile.from_model_dir(model_dir)
        except ModelError as exc:
            raise ModelError(f"cannot read the model in {args.model}: {exc}") from None
        return profile.with_tier(args.tier) if args.tier else profile
    return ModelProfile.for_tier(args.tier or "small")


def _fmt_removed(removed: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(removed.items(), key=lambda kv: -kv[1])) or "-"


def render_table(result) -> str:
    report = result.report
    rows = [("stage", "chars", "tokens", "ms", "removed (chars)")]
    for s in report.stages:
        rows.append(
            (
                s.name,
                f"{s.chars_before:,} → {s.chars_after:,}",
                f"{s.tokens_before:,} → {s.tokens_after:,}",
                f"{s.ms:.3f}",
                _fmt_removed(s.removed),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * (sum(widths) + 8 + len(rows[0][4])))
    ratio = report.before.chars / max(report.after.chars, 1)
    count = "tokens" if report.exact_tokens else "tokens (estimated)"
    lines.append("")
    lines.append(
        f"total: {report.before.chars:,} → {report.after.chars:,} chars ({ratio:.1f}× smaller), "
        f"{report.before.tokens:,} → {report.after.tokens:,} {count}, {report.ms:.2f} ms, tier {report.tier}"
    )
    tools = result.carry.tool_names
    if tools:
        lines.append(f"tools offered to the model: {', '.join(tools)}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..errors import RequestDecodeError
    from ..pipeline import Pipeline
    from ..render import prompt_text

    body = _read_request(args.request)
    pipeline = Pipeline(_stage_config(args))
    try:
        result = pipeline.trim(body, _profile(args))
    except RequestDecodeError as exc:
        raise RequestDecodeError(f"not a valid Messages request: {exc}") from None
    if args.json:
        json.dump(result.as_dict(), sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print(render_table(result))
    if args.diff:
        before = prompt_text(result.original).splitlines(keepends=True)
        after = prompt_text(result.request).splitlines(keepends=True)
        print()
        sys.stdout.writelines(difflib.unified_diff(before, after, "before", "after", n=1))
    if args.show:
        print()
        print(prompt_text(result.request))
    return 0
