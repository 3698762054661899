"""``trimkit inspect``: what each stage does to one request, as a table, JSON, a diff, the prompt or an HTML page."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import stat
import sys
import time
from pathlib import Path

from dataclasses import replace

from ..errors import ModelError
from ..profile import ModelProfile
from .errors import CommandError, Exit
from .main import _config


def _request_path(source: str) -> Path | None:
    """The file ``source`` names: itself, or the newest capture in a directory (None for stdin)."""
    if source == "-":
        return None
    path = Path(source)
    if path.is_dir():
        candidates = sorted(path.glob("*/original.json")) or sorted(path.glob("*.json"))
        if not candidates:
            raise CommandError(f"no captured requests in {path}", Exit.INPUT)
        path = max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    return path


def _read_request(source: str, path: Path | None, limit: int) -> bytes:
    """The request to inspect: the file at ``path`` (see :func:`_request_path`), or stdin when None.

    Only a regular file is read (a FIFO would wait for a writer, ``/dev/zero`` never
    ends), and no more than ``limit`` bytes (``max_body_bytes``, what the server
    would accept) of anything.
    """
    if path is None:
        return _bounded(sys.stdin.buffer.read(limit + 1), "standard input", limit)
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
    path = _request_path(args.request)
    body = _read_request(args.request, path, config.settings.max_body_bytes)
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
    if args.html:
        write_html(args.html, result, path)
    if args.diff:
        before = prompt_text(result.original).splitlines(keepends=True)
        after = prompt_text(result.request).splitlines(keepends=True)
        print()
        sys.stdout.writelines(difflib.unified_diff(before, after, "before", "after", n=1))
    if args.show:
        print()
        print(_prompt(result, template))
    return 0


def _captured_response(request_path: Path | None) -> dict | None:
    """The response saved beside a captured request (``DIR/…/response.json``), if there is one."""
    if request_path is None or request_path.name != "original.json":
        return None
    try:
        response = json.loads((request_path.parent / "response.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return response if isinstance(response, dict) else None


def report_view(result, request_path: Path | None = None):
    """One request's :class:`~trimkit.report_html.RequestView`, with the prompt's diff and, for a
    capture, the response the server gave."""
    from ..render import prompt_text
    from ..report_html import RequestView, prompt_texts, response_text

    at = request_path.stat().st_mtime if request_path is not None else time.time()
    view = RequestView(id=1, at=at, model=result.original.model, served=result.profile.name, tier=result.report.tier,
                       kind="", report=result.report, tools_offered=list(result.carry.tool_names))
    texts = prompt_texts(prompt_text(result.original), prompt_text(result.request))
    response = _captured_response(request_path)
    if response is not None:
        content = [b for b in response.get("content") or [] if isinstance(b, dict)]
        texts.response = response_text(content)
        view.tool_calls = [str(b.get("name", "")) for b in content if b.get("type") == "tool_use"]
        view.stop_reason = str(response.get("stop_reason") or "")
        usage = response.get("usage") or {}
        view.prefilled_tokens = usage.get("input_tokens")
        view.cached_tokens = usage.get("cache_read_input_tokens")
        view.output_tokens = usage.get("output_tokens")
    view.texts = texts
    return view


def write_html(out: str, result, request_path: Path | None) -> None:
    """``--html OUT``: the report as one self-contained page (styles inline, the chart as SVG)."""
    from ..report_html import report_file

    source = str(request_path) if request_path is not None else "standard input"
    try:
        Path(out).write_text(report_file(report_view(result, request_path), source=source), encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror}", Exit.INPUT) from None
    print(f"trimkit inspect: report written to {out}", file=sys.stderr)
