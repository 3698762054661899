"""``trimkit launch claude``: Claude Code on a local model, in one command.

Uses the trimkit server that answers ``/health`` on the configured host and port,
or starts ``trimkit serve`` with the same configuration as a child process, waits
until the model has loaded, runs ``claude`` with the environment below, and stops
the child server again when Claude Code exits (a server it did not start is left
running). Claude Code's exit status is passed through.

The environment (``--print-env`` prints it instead of running anything):

- ``ANTHROPIC_BASE_URL`` is the server; ``ANTHROPIC_AUTH_TOKEN`` its API key (or
  ``trimkit`` when it has none); ``ANTHROPIC_API_KEY`` is empty so a real key in
  the user's environment is neither used nor sent.
- ``ANTHROPIC_MODEL`` and the opus, sonnet, haiku, small-fast and sub-agent model
  variables all name the served model by its own name (``Qwen3-Coder-30B-A3B-
  Instruct-4bit``), not a ``claude-*`` id. With several models, ``ANTHROPIC_MODEL``,
  opus and sonnet name the model ``opus`` maps to (the largest, unless configured)
  and haiku, small-fast and the sub-agent model (``CLAUDE_CODE_SUBAGENT_MODEL``, read
  by 2.1.197 and 2.1.332) the one ``haiku`` maps to (the smallest): Claude Code's
  side work and its sub-agents then run on the small model. Claude Code (2.1.x) takes
  ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` as the context window only for model ids that
  do not start with ``claude-``; for ``claude-*`` ids it assumes 200,000 tokens and
  never lets ``CLAUDE_CODE_AUTO_COMPACT_WINDOW`` go below 100,000, so it would not
  compact before a 32 K local window overflows. The served name is always accepted
  by the server, whatever ``model_patterns`` says.
- ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` and ``CLAUDE_CODE_AUTO_COMPACT_WINDOW`` are the
  server's real context window (``/health``'s ``context_window``; without a running
  server the configured ``context_window``, else the model's ``config.json``, else
  32,768) plus the 13,000 tokens Claude Code keeps free below the window on top of
  the answer's ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` (an eighth of the window, 4,096 to
  32,000). Claude Code then compacts when the conversation would no longer fit the
  real window with room for the answer, not when it is half full: on a 32 K window
  that is at about 28,700 tokens instead of 15,700. The budget stage keeps every
  prompt within the real window meanwhile (measured on a 60-turn session through
  real Claude Code: 8 compactions instead of a storm; benchmarks/bench_compaction.py).
- No side requests, as measured with the real binaries (2.1.197 and 2.1.332, in
  ``-p`` mode and in the terminal UI; tests/test_e2e_launch_env.py runs it again):
  ``CLAUDE_CODE_DISABLE_TERMINAL_TITLE=1`` stops the title request everywhere;
  ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` stops it only in ``-p`` mode on
  2.1.197 (and is what keeps telemetry and update checks off);
  ``CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION=false`` keeps the suggested-next-prompt
  request off. ``CLAUDE_CODE_ATTRIBUTION_HEADER=0`` takes the per-request
  ``x-anthropic-billing-header`` block out of the system prompt, and
  ``API_TIMEOUT_MS=3000000`` (50 minutes) lets a long prefill on a laptop finish.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple, TextIO

import msgspec

from ..config import Config, ServerSettings, env_name
from ..wire import Health
from .errors import CommandError, Exit

CLAUDE_BIN_ENV = "TRIMKIT_CLAUDE_BIN"
INSTALL_CLAUDE_CODE = "npm install -g @anthropic-ai/claude-code"
PLACEHOLDER_TOKEN = "trimkit"
API_TIMEOUT_MS = 3_000_000
COMPACT_BUFFER = 13_000
"""Tokens Claude Code (2.1.197, 2.1.332) keeps free below the context window besides the
answer: it compacts at window - max output - this (measured)."""
MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS = 4_096, 32_000
MAIN_MODEL_VARIABLES = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL")
SMALL_MODEL_VARIABLES = ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL")
# Set in the user's environment, these would send Claude Code to another provider.
PROVIDER_SWITCHES = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")
PRINT_FORMATS = ("all", "shell", "json", "vscode")
DEFAULT_WAIT = 900.0


class LaunchError(CommandError):
    """A one-line reason ``trimkit launch`` cannot go on; ``status`` is the exit status."""


class PortTaken(LaunchError):
    """Something other than a trimkit server answers on the port."""

    def __init__(self, url: str):
        super().__init__(f"{url} answers, but not as a trimkit server: choose another port with --port PORT")
        self.url = url


class ClientNotFound(LaunchError):
    """The client cannot be run: ``problem`` says why, ``fix`` is the command that installs it."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(f"{problem}; install it with: {fix}" if fix else problem, Exit.NOT_INSTALLED)
        self.problem = problem
        self.fix = fix


# A child ``trimkit serve`` that exits with one of these has printed its one-line reason last.
SERVE_REASONS = frozenset({Exit.USAGE, Exit.INPUT, Exit.MODEL, Exit.NOT_INSTALLED})


# ---------------------------------------------------------------- the server


def base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _get_json(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, Any]:
    """GET ``url``; (status, JSON body or None). Raises OSError when nothing answers."""
    request = urllib.request.Request(url, headers={"x-api-key": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def server_health(url: str) -> Health | None:
    """The trimkit server's ``/health`` at ``url``, or None when nothing listens there."""
    try:
        _, body = _get_json(url + "/health", timeout=2.0)
    except (OSError, urllib.error.URLError):
        return None
    try:
        return msgspec.convert(body, Health)
    except msgspec.ValidationError:
        raise PortTaken(url) from None


def pick_model_id(ids: list[str]) -> str:
    """The served name Claude Code should ask for: the model's own name, without an owner."""
    own = [i for i in ids if not i.lower().startswith("claude-")]
    short = [i for i in own if "/" not in i]
    return (short or own or ids)[0]


class ServedModels(NamedTuple):
    """The names Claude Code asks for: ``main`` for its own turns (opus, sonnet), ``small`` for
    its side work and sub-agents (haiku), with their context windows (None: the server's)."""

    main: str
    small: str
    main_window: int | None = None
    small_window: int | None = None


def served_models(url: str, token: str) -> ServedModels:
    """Ask the running server which names it serves, and which model each family goes to
    (this also checks the API key)."""
    status, body = _get_json(url + "/v1/models", token)
    if status == 401:
        raise LaunchError(
            f"the server at {url} wants another API key: pass --api-key KEY (or set {env_name('api_key')})"
        )
    entries = [m for m in (body or {}).get("data", []) if isinstance(m, dict) and "id" in m]
    if status != 200 or not entries:
        raise LaunchError(f"the server at {url} lists no models (GET /v1/models answered {status})")

    def family(name: str) -> dict | None:
        return next((m for m in entries if name in (m.get("families") or [])), None)

    main, small = family("opus"), family("haiku")
    if main is None or small is None:
        chosen = pick_model_id([m["id"] for m in entries])
        return ServedModels(chosen, chosen)
    return ServedModels(main["id"], small["id"], main.get("context_window"), small.get("context_window"))


def configured_models(settings: ServerSettings) -> ServedModels:
    """The names from the configuration alone (no server running)."""
    from ..backends import model_set
    from ..backends.catalog import several_models

    if not several_models(settings):
        model_id = configured_model_id(settings)
        return ServedModels(model_id, model_id)
    models = model_set(settings, strict=False)
    main, small = models.family("opus"), models.family("haiku")
    assert main is not None and small is not None  # every family is assigned when there are several models
    return ServedModels(main.name, small.name, main.window, small.window)


def configured_model_id(settings: ServerSettings) -> str:
    """The served name, from the configuration alone (no server running)."""
    model = settings.model or settings.upstream_model
    if model:
        return model.rstrip("/").rsplit("/", 1)[-1]
    if settings.backend == "replay":
        return "replay"
    raise LaunchError("no model is configured: pass --model MODEL (`trimkit doctor` recommends one)", Exit.USAGE)


def configured_context_window(settings: ServerSettings) -> int:
    from ..backends.locate import model_context_window
    from ..profile import DEFAULT_CONTEXT_WINDOW

    return settings.context_window or model_context_window(settings.model) or DEFAULT_CONTEXT_WINDOW


# ---------------------------------------------------------------- the environment


def output_tokens(window: int, cap: int | None = None) -> int:
    """Tokens Claude Code may ask for per answer: an eighth of the window, 4,096 to 32,000."""
    tokens = min(max(window // 8, MIN_OUTPUT_TOKENS), MAX_OUTPUT_TOKENS)
    return min(tokens, cap) if cap else tokens


def claude_env(url: str, token: str, model_id: str, window: int, max_output: int, *,
               small_model_id: str | None = None) -> dict[str, str]:
    """What Claude Code needs to use the server at ``url``, in a stable order; ``small_model_id``
    (by default ``model_id``) takes the haiku, small-fast and sub-agent variables."""
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": token, "ANTHROPIC_API_KEY": ""}
    env.update(dict.fromkeys(MAIN_MODEL_VARIABLES, model_id))
    env.update(dict.fromkeys(SMALL_MODEL_VARIABLES, small_model_id or model_id))
    env.update(
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_DISABLE_TERMINAL_TITLE="1",
        CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION="false",
        CLAUDE_CODE_ATTRIBUTION_HEADER="0",
        API_TIMEOUT_MS=str(API_TIMEOUT_MS),
        CLAUDE_CODE_MAX_CONTEXT_TOKENS=str(window + COMPACT_BUFFER),
        CLAUDE_CODE_AUTO_COMPACT_WINDOW=str(window + COMPACT_BUFFER),
        CLAUDE_CODE_MAX_OUTPUT_TOKENS=str(max_output),
    )
    return env


def shell_quote(value: str) -> str:
    """Single-quoted for a POSIX shell, always (``''`` for the empty string)."""
    return "'" + value.replace("'", "'\\''") + "'"


def format_env(env: dict[str, str], fmt: str, about: str) -> str:
    exports = "\n".join(f"export {name}={shell_quote(value)}" for name, value in env.items())
    settings = json.dumps({"env": env}, indent=2)
    vscode = json.dumps(
        {"claudeCode.environmentVariables": [{"name": k, "value": v} for k, v in env.items()]}, indent=2
    )
    if fmt == "shell":
        return exports
    if fmt == "json":
        return settings
    if fmt == "vscode":
        return vscode
    return "\n".join(
        [
            f"# {about}",
            "# shell (then run `claude`):",
            exports,
            "",
            "# Claude Code settings.json (~/.claude/settings.json, or .claude/settings.local.json in a project):",
            settings,
            "",
            "# VS Code settings.json, for the Claude Code extension:",
            vscode,
        ]
    )


# ---------------------------------------------------------------- processes


def find_client(name: str, command: str, bin_env: str, install: str) -> str:
    """The client's command: the file ``$bin_env`` names, else ``command`` on ``PATH``."""
    explicit = os.environ.get(bin_env)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ClientNotFound(f"{bin_env}={explicit} is not an executable file")
        return explicit
    found = shutil.which(command)
    if found is None:
        raise ClientNotFound(f"{name} is not installed (no `{command}` on PATH)", install)
    return found


def find_claude() -> str:
    return find_client("Claude Code", "claude", CLAUDE_BIN_ENV, INSTALL_CLAUDE_CODE)


class Progress:
    """One status line on stderr: rewritten in place on a terminal, printed on change otherwise."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = ""

    def update(self, phase: str, seconds: float) -> None:
        if self.tty:
            self.stream.write(f"\r\033[Ktrimkit: {phase}… {seconds:.0f} s")
            self.stream.flush()
        elif phase != self._last:
            print(f"trimkit: {phase}…", file=self.stream, flush=True)
        self._last = phase

    def done(self, text: str) -> None:
        if self.tty and self._last:
            self.stream.write("\r\033[K")
        print(f"trimkit: {text}", file=self.stream, flush=True)
        self._last = ""


def _setting_text(value: Any) -> str:
    """A setting's value as a TRIMKIT_* variable reads it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def serve_environment(config: Config) -> dict[str, str]:
    """The environment for a child ``trimkit serve`` that ends up with ``config``'s settings.

    It reads the same file (``TRIMKIT_CONFIG``) and environment; values that came
    from this command's flags travel as ``TRIMKIT_*`` variables, so no key shows up
    in the process list.
    """
    env = dict(os.environ)
    if config.path is not None:
        env["TRIMKIT_CONFIG"] = str(config.path)
    for name, source in config.sources.items():
        if source.kind == "flag":
            env[env_name(name)] = _setting_text(getattr(config.settings, name))
    return env


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class ChildServer:
    """``trimkit serve`` in its own session (Ctrl-C in Claude Code does not reach it), logging to a file."""

    def __init__(self, config: Config):
        port = config.settings.port
        fd, name = tempfile.mkstemp(prefix=f"trimkit-serve-{port}-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trimkit.cli", "serve"],
                env=serve_environment(config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def failure(self) -> LaunchError | None:
        """Why the server stopped, if it has: its own one-line reason, with its exit status, when it gave one."""
        code = self.proc.poll()
        if code is None:
            return None
        if code in SERVE_REASONS:  # its last line is ``trimkit serve: <reason>``, which says it all
            reason = _last_line(self.log).removeprefix("trimkit serve: ")
            self.log.unlink(missing_ok=True)
            return LaunchError(reason, code)
        return LaunchError(f"trimkit serve exited with status {code}; see its log: {self.log}")

    def stop(self, timeout: float = 10) -> bool:
        """Stop the server; False when it had already stopped by itself."""
        if self.proc.poll() is not None:
            return False
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return True

    def tidy_log(self) -> str:
        """Remove the log if it holds only trimkit's own status lines; else say where it is."""
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        if all(line.startswith("trimkit: ") for line in lines):
            self.log.unlink(missing_ok=True)
            return ""
        return f" (its log: {self.log})"


def wait_until_ready(url: str, child: ChildServer | None, timeout: float, progress: Progress) -> Health:
    """Poll ``/health`` until the model is loaded; the progress line says what is happening."""
    started = time.monotonic()
    while True:
        if child is not None and (failure := child.failure()):
            raise failure
        try:
            health = server_health(url)
        except PortTaken:
            health = None  # the child will say so when it fails to bind
        if health is not None:
            if health.status == "ok":
                progress.done(f"{health.model} ready in {time.monotonic() - started:.1f} s")
                return health
            if health.status == "error":
                raise LaunchError(f"the server cannot serve: {health.detail}")
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise LaunchError(f"the server at {url} was not ready after {timeout:.0f} s (--wait SECONDS waits longer)")
        progress.update(f"loading {health.model}" if health else "starting trimkit serve", elapsed)
        time.sleep(0.25)


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def run_client(command: list[str], env: dict[str, str]) -> int:
    """Run the client in the foreground; Ctrl-C is the client's, SIGTERM/SIGHUP stop it too."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum, _frame):
        proc.send_signal(signum)

    handlers = {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: forward}
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = forward
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        return _exit_status(proc.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def client_environment(env: dict[str, str]) -> dict[str, str]:
    merged = {k: v for k, v in os.environ.items() if k not in PROVIDER_SWITCHES}
    merged.update(env)
    return merged


# ---------------------------------------------------------------- the command


def print_env(config: Config, fmt: str, out: TextIO) -> int:
    served, about = configured_server(config)
    print(format_env(served_claude_env(served), fmt, f"Claude Code on {about}"), file=out)
    return 0


class Served(NamedTuple):
    """The server a client is pointed at: its URL, the key to send, the model's name and sizes,
    and the model for the client's side work when it is another (``small_model_id``)."""

    url: str
    token: str
    model_id: str
    window: int
    max_output: int
    small_model_id: str | None = None


def served_claude_env(served: Served) -> dict[str, str]:
    return claude_env(served.url, served.token, served.model_id, served.window, served.max_output,
                      small_model_id=served.small_model_id)


@contextmanager
def running_server(config: Config, wait: float = DEFAULT_WAIT) -> Iterator[Served]:
    """The trimkit server that answers on the configured port, else a child ``trimkit serve``
    (stopped again afterwards), once its model has loaded."""
    settings = config.settings
    url = base_url(settings.host, settings.port)
    token = settings.api_key or PLACEHOLDER_TOKEN
    child: ChildServer | None = None
    try:
        if server_health(url) is not None:
            print(f"trimkit: using the trimkit server already running at {url}", file=sys.stderr)
        else:
            child = ChildServer(config)
            print(f"trimkit: started trimkit serve on {url} (log: {child.log})", file=sys.stderr)
        health = wait_until_ready(url, child, wait, Progress())
        names = served_models(url, token)
        window = names.main_window or health.context_window
        yield Served(url, token, names.main, window, output_tokens(window, settings.max_output_tokens), names.small)
    finally:
        if child is not None and child.stop():
            print(f"trimkit: stopped the server{child.tidy_log()}", file=sys.stderr)


def configured_server(config: Config) -> tuple[Served, str]:
    """What a client would be pointed at, from the running server or else the configuration
    alone (nothing is started); and a sentence saying which."""
    settings = config.settings
    url = base_url(settings.host, settings.port)
    token = settings.api_key or PLACEHOLDER_TOKEN
    health = server_health(url)
    if health is not None:
        names = served_models(url, token)
        window = names.main_window or health.context_window
        about = f"the trimkit server running at {url} (context window {window:,})"
    else:
        names = configured_models(settings)
        window = names.main_window or configured_context_window(settings)
        about = f"`trimkit serve` at {url} (not running now; context window {window:,} from the configuration)"
    if names.small != names.main:
        about += f"; side work and sub-agents on {names.small}"
    served = Served(url, token, names.main, window, output_tokens(window, settings.max_output_tokens), names.small)
    return served, about


def launch_claude(config: Config, claude_args: list[str], *, wait: float = DEFAULT_WAIT) -> int:
    claude = find_claude()
    with running_server(config, wait) as served:
        return run_client([claude, *claude_args], client_environment(served_claude_env(served)))


def cmd_launch(args: Any, config: Config) -> int:
    if args.client == "opencode":
        from . import launch_opencode

        if args.print_env:
            raise LaunchError("OpenCode is configured by a file: use --print-config", Exit.USAGE)
        if args.print_config:
            return launch_opencode.print_config(config, sys.stdout)
        return launch_opencode.launch_opencode(config, list(args.client_args), wait=args.wait)
    if args.print_config:
        raise LaunchError("Claude Code is configured by its environment: use --print-env", Exit.USAGE)
    if args.print_env:
        return print_env(config, args.print_env, sys.stdout)
    return launch_claude(config, list(args.client_args), wait=args.wait)
