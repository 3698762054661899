"""``trimkit inspect``: what each stage does to one request, as a table, JSON, a diff or the prompt."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import stat
import sys
from pathlib import Path

from dataclasses import replace

from ..errors import ModelError
from ..profile import ModelProfile
from .errors import CommandError, Exit
from .main import _config


def _read_request(source: str, limit: int) -> bytes:
    """The request to inspect: a file, the newest capture in a directory, or ``-`` (stdin).

    Only a regular file is read (a FIFO would wait for a writer, ``/dev/zero`` never
    ends), and no more than ``limit`` bytes (``max_body_bytes``, what the server
    would accept) of anything.
    """
    if source == "-":
        return _bounded(sys.stdin.buffer.read(limit + 1), "standard input", limit)
    path = Path(source)
    if path.is_dir():
        candidates = sorted(path.glob("*/original.json")) or sorted(path.glob("*.json"))
        if not candidates:
            raise CommandError(f"no captured requests in {path}", Exit.INPUT)
        path = max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror}", Exit.INPUT) from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CommandError(f"{path} is not a regular file", Exit.INPUT)
        try:
            return _bounded(file.read(limit + 1), str(path), limit)
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror}", Exit.INPUT) from None


def _bounded(data: bytes, what: str, limit: int) -> bytes:
    if len(data) > limit:
        raise CommandError(f"{what} holds more than {limit} bytes (max_body_bytes), more than the server would take",
                           Exit.INPUT)
    return data


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


def _template(args: argparse.Namespace):
    """The model's chat template, rendered as the server renders it (None without ``--model`` or a template)."""
    if not args.model:
        return None
    from ..backends.mlx import load_chat_tokenizer

    try:
        return load_chat_tokenizer(Path(args.model))[1]
    except Exception as exc:  # transformers raises whatever its loaders raise
        raise ModelError(f"cannot read the tokenizer in {args.model}: {exc}") from None


def _prompt(result, template) -> str:
    """The prompt as the model reads it: through its template with ``--model``, else trimkit's plain rendering."""
    from ..render import chat_messages, native_chat, prompt_text

    if template is None:
        return prompt_text(result.request)
    chat = native_chat(result.request) if result.profile.native_tools else chat_messages(result.request)
    return template.text(chat)


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
    lines.append("")
    lines.append(f"total: {report.summary()}")
    if result.carry.recognized_agent:
        lines.append(f"system prompt recognised: {result.carry.recognized_agent}")
    tools = result.carry.tool_names
    if tools:
        how = " (through the model's chat template)" if result.profile.native_tools else ""
        lines.append(f"tools offered to the model{how}: {', '.join(tools)}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..errors import RequestDecodeError
    from ..pipeline import Pipeline
    from ..render import prompt_text

    config = _config(args)
    body = _read_request(args.request, config.settings.max_body_bytes)
    profile, template = _profile(args), _template(args)
    if template is not None:
        native = template.traits.renders_tools and config.settings.convention != "xml"
        profile = replace(profile, native_tools=native)
    try:
        result = Pipeline(config.stages).trim(body, profile)
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
        print(_prompt(result, template))
    return 0
