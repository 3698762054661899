"""The ``trimkit`` command: serve, inspect, config, launch, doctor."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
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
        path = max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"trimkit inspect: cannot read {source}: {exc.strerror}") from None


def _profile(args: argparse.Namespace) -> ModelProfile:
    if args.model:
        model_dir = Path(args.model)
        if not (model_dir / "config.json").exists():
            raise SystemExit(f"trimkit inspect: {args.model} is not a model directory (no config.json)")
        try:
            profile = ModelProfile.from_model_dir(model_dir)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"trimkit inspect: cannot read the model in {args.model}: {exc}") from None
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
    from .loading import REINSTALL, missing_model, report_loading

    try:
        import uvicorn

        from .backends.base import BackendError
        from .server import create_app
        from .server.app import make_backend
    except ImportError as exc:
        print(f"trimkit serve: {exc}; install the server with: {REINSTALL}", file=sys.stderr)
        return 2
    settings = _config(args).settings
    started = time.monotonic()
    label = settings.model or f"{settings.backend} backend"
    try:
        settings.check_bind()
        if settings.download and settings.backend == "mlx" and settings.model:
            from .backends.mlx import resolve_model_path

            print(f"trimkit: fetching {settings.model} unless it is cached…", file=sys.stderr, flush=True)
            resolve_model_path(settings.model, allow_download=True)
        elif problem := missing_model(settings):
            raise ValueError(problem)
        print(f"trimkit: loading {label}…", file=sys.stderr, flush=True)
        backend = make_backend(settings)
        app = create_app(settings, backend=backend)
    except (ValueError, FileNotFoundError, BackendError) as exc:
        print(f"trimkit serve: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"trimkit serve: the {settings.backend} backend needs {exc.name or exc}: {REINSTALL}", file=sys.stderr)
        return 2
    print(f"trimkit: serving {settings.backend} backend on http://{settings.host}:{settings.port}", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=2
    ))

    def keep_serving(reason: str) -> None:
        print("trimkit: still serving: /health answers 503 with the reason", file=sys.stderr, flush=True)

    report_loading(backend, label, started, on_failure=keep_serving)
    try:
        server.run()
    finally:
        backend.close()
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from .launch import cmd_launch as launch

    return launch(args, _config(args))


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import cmd_doctor as doctor

    return doctor(args)


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (and of ``launch``, which may start it): every setting has one."""
    from .config import add_setting_flags

    parser.add_argument("--model", help="model directory or Hugging Face id")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8787)")
    parser.add_argument("--api-key", help="key clients must send (required off loopback)")
    parser.add_argument("--backend", choices=("mlx", "replay", "openai", "anthropic"))
    parser.add_argument("--upstream", help="openai/anthropic backends: the engine's base URL")
    parser.add_argument("--script", help="replay backend: JSON array of model turns")
    parser.add_argument("--max-queue", type=int, help="requests that may wait for the model")
    parser.add_argument("--tier", choices=TIERS, help="override the model's size tier")
    parser.add_argument("--context-window", type=int, help="override the model's context window")
    parser.add_argument("--download", action="store_const", const=True,
                        help="fetch a Hugging Face model id that is not cached yet (off: no outbound connection)")
    parser.add_argument("--capture", "--capture-dir", dest="capture_dir", metavar="DIR",
                        help="save each request, trimmed request, prompt and response in DIR (secrets redacted)")
    add_setting_flags(parser)


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
    _add_server_options(s)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser(
        "config", parents=[common], help="print the effective configuration and where each value came from"
    )
    c.add_argument("--json", action="store_true", help="the same as JSON")
    add_setting_flags(c)
    c.set_defaults(func=cmd_config)

    from .launch import DEFAULT_WAIT, PRINT_FORMATS

    l = sub.add_parser(
        "launch", parents=[common], help="run Claude Code on the local model (starting the server if needed)",
        description="Start trimkit serve (or use the one running), then run Claude Code on it. "
        "Arguments after -- go to claude.",
        usage="trimkit launch claude [options] [-- CLAUDE ARGS...]",
    )
    l.add_argument("client", choices=("claude",), help="the client to run")
    l.add_argument("--print-env", nargs="?", const="all", choices=PRINT_FORMATS, metavar="FORMAT",
                   help="print the environment instead of running anything: all (default), shell, json, vscode")
    l.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                   help=f"how long to wait for the model to load (default {DEFAULT_WAIT:.0f})")
    _add_server_options(l)
    l.set_defaults(func=cmd_launch, client_args=[])

    d = sub.add_parser("doctor", parents=[common], help="check this machine, the model and the pipeline")
    d.add_argument("--json", action="store_true", help="the checks as JSON")
    add_setting_flags(d)
    d.set_defaults(func=cmd_doctor)
    return parser


def _split_client_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``trimkit launch claude ... -- ARGS``: what follows ``--`` is the client's."""
    if "--" in argv and "launch" in argv[: argv.index("--")]:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    argv, client_args = _split_client_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if client_args:
        args.client_args = client_args
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
