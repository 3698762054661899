"""The ``trimkit`` command: serve, inspect, config."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Sequence

from .profile import TIERS, ModelProfile


def _read_request(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if path.is_dir():
        candidates = sorted(path.glob("*/original.json")) or sorted(path.glob("*.json"))
        if not candidates:
            raise SystemExit(f"trimkit inspect: no captured requests in {path}")
        path = max(candidates, key=lambda p: p.stat().st_mtime)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"trimkit inspect: cannot read {source}: {exc.strerror}") from None


def _profile(args: argparse.Namespace) -> ModelProfile:
    if args.model:
        model_dir = Path(args.model)
        if not (model_dir / "config.json").exists():
            raise SystemExit(f"trimkit inspect: {args.model} is not a model directory (no config.json)")
        profile = ModelProfile.from_model_dir(model_dir)
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
    from .pipeline import Pipeline
    from .render import prompt_text
    from .stage import PromptTooLong
    from .wire import RequestDecodeError

    body = _read_request(args.request)
    try:
        result = Pipeline(_stage_config(args)).trim(body, _profile(args))
    except RequestDecodeError as exc:
        print(f"trimkit inspect: not a valid Messages request: {exc}", file=sys.stderr)
        return 2
    except PromptTooLong as exc:
        print(f"trimkit inspect: {exc}", file=sys.stderr)
        return 3
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


def _config(args: argparse.Namespace):
    """Settings from the config file, TRIMKIT_* variables and this command's flags."""
    from .config import ConfigFileError, load_config, overrides_from_args

    try:
        return load_config(args.config, overrides=overrides_from_args(args))
    except ConfigFileError as exc:
        print(f"trimkit {args.command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _stage_config(args: argparse.Namespace) -> dict:
    return _config(args).stages


def cmd_config(args: argparse.Namespace) -> int:
    from .config import config_as_dict, format_config

    config = _config(args)
    if args.json:
        json.dump(config_as_dict(config), sys.stdout, indent=2)
        print()
    else:
        print(format_config(config))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import create_app

    settings = _config(args).settings
    try:
        settings.check_bind()
        app = create_app(settings)
    except (ValueError, FileNotFoundError) as exc:
        print(f"trimkit serve: {exc}", file=sys.stderr)
        return 2
    print(f"trimkit: serving {settings.backend} backend on http://{settings.host}:{settings.port}", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import add_setting_flags

    parser = argparse.ArgumentParser(prog="trimkit", description="Trim agent requests for local models.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE",
        help="config file (default: $TRIMKIT_CONFIG, ./trimkit.toml, ~/.config/trimkit/config.toml)",
    )

    p = sub.add_parser("inspect", parents=[common], help="show what each stage does to a request")
    p.add_argument("request", help="request JSON file, - for stdin, or a capture directory")
    p.add_argument("--tier", choices=TIERS, help="model size tier (default small, or the model's)")
    p.add_argument("--model", help="a local model directory to take the tier, window and tokenizer from")
    p.add_argument("--diff", action="store_true", help="unified diff of the prompt before and after")
    p.add_argument("--show", action="store_true", help="print the trimmed prompt")
    p.add_argument("--json", action="store_true", help="machine-readable report with the trimmed request")
    p.set_defaults(func=cmd_inspect)

    s = sub.add_parser("serve", parents=[common], help="serve the Anthropic Messages API on a local model")
    s.add_argument("--model", help="model directory or Hugging Face id")
    s.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 8787)")
    s.add_argument("--api-key", help="key clients must send (required off loopback)")
    s.add_argument("--backend", choices=("mlx", "replay"))
    s.add_argument("--script", help="replay backend: JSON array of model turns")
    s.add_argument("--max-queue", type=int, help="requests that may wait for the model")
    s.add_argument("--tier", choices=TIERS, help="override the model's size tier")
    s.add_argument("--context-window", type=int, help="override the model's context window")
    add_setting_flags(s)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser(
        "config", parents=[common], help="print the effective configuration and where each value came from"
    )
    c.add_argument("--json", action="store_true", help="the same as JSON")
    add_setting_flags(c)
    c.set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
