"""The ``trimkit`` command: serve, inspect, config, launch, doctor.

:func:`main` is the one error path of every subcommand: an expected error
(:class:`~trimkit.errors.TrimkitError`) becomes ``trimkit <command>: <message>``
on stderr and the exit status :mod:`.errors` gives its kind; Ctrl-C and a closed
output pipe end quietly with their conventional statuses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from ..errors import TrimkitError
from ..profile import TIERS
from .errors import Exit, exit_status

REINSTALL = "pip install --force-reinstall trimkit"
"""What to run when part of the installation is missing."""


def _config(args: argparse.Namespace):
    """Settings from the config file, TRIMKIT_* variables and this command's flags."""
    from ..config import load_config, overrides_from_args

    return load_config(args.config, overrides=overrides_from_args(args))


def cmd_config(args: argparse.Namespace) -> int:
    from ..config import config_as_dict, format_config

    config = _config(args)
    if args.json:
        json.dump(config_as_dict(config), sys.stdout, indent=2)
        print()
    else:
        print(format_config(config))
    return 0


def _command(module: str, name: str):
    """A subcommand's function, imported when it runs (so ``--help`` stays fast)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(args)

    return run


def cmd_launch(args: argparse.Namespace) -> int:
    from .launch import cmd_launch as launch

    return launch(args, _config(args))


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import cmd_doctor as doctor

    return doctor(args)


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (and of ``launch``, which may start it): every setting has one."""
    from ..backends import BACKENDS
    from ..config import add_setting_flags

    parser.add_argument("--model", help="model directory or Hugging Face id")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8787)")
    parser.add_argument("--api-key", help="key clients must send (required off loopback)")
    parser.add_argument("--backend", choices=BACKENDS)
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
    from ..config import add_setting_flags

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
    p.add_argument("--html", metavar="OUT.html",
                   help="also write the report as one self-contained HTML page: stages, a chart, the diff")
    p.set_defaults(func=_command("inspect", "cmd_inspect"))

    s = sub.add_parser("serve", parents=[common], help="serve the Anthropic Messages API on a local model")
    _add_server_options(s)
    s.set_defaults(func=_command("serve", "cmd_serve"))

    c = sub.add_parser(
        "config", parents=[common], help="print the effective configuration and where each value came from"
    )
    c.add_argument("--json", action="store_true", help="the same as JSON")
    add_setting_flags(c)
    c.set_defaults(func=cmd_config)

    from .launch import DEFAULT_WAIT, PRINT_FORMATS

    l = sub.add_parser(
        "launch", parents=[common],
        help="run Claude Code or OpenCode on the local model (starting the server if needed)",
        description="Start trimkit serve (or use the one running), then run Claude Code or OpenCode on it. "
        "Arguments after -- go to the client.",
        usage="trimkit launch {claude,opencode} [options] [-- CLIENT ARGS...]",
    )
    l.add_argument("client", choices=("claude", "opencode"), help="the client to run")
    l.add_argument("--print-env", nargs="?", const="all", choices=PRINT_FORMATS, metavar="FORMAT",
                   help="claude: print the environment instead of running anything: all (default), shell, json, vscode")
    l.add_argument("--print-config", action="store_true",
                   help="opencode: print the opencode.json that points OpenCode at the server, instead of running it")
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


def _drop_output() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by something without a file (tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv, client_args = _split_client_args(list(sys.argv[1:] if argv is None else argv))
    command = "trimkit"
    try:
        args = build_parser().parse_args(argv)
        command = f"trimkit {args.command}"
        if client_args:
            args.client_args = client_args
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return status
    except TrimkitError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        _drop_output()
        return Exit.BROKEN_PIPE

