"""Record what real agent clients send, by running them against a recording server.

The pipeline is only as good as its picture of the clients, and the clients change
every week. This module runs the real binaries from npm (:mod:`trimkit.testing.clients`)
on a small git project, against a server on 127.0.0.1 that saves every request and
answers it from a per-case script, and keeps the requests in a cache directory::

    $XDG_CACHE_HOME/trimkit-tests/recordings/<client>-<version>/format-<N>/<case>/001.json

Each file holds the request's ``path``, ``headers`` (keys redacted) and ``body``; each
case directory has ``case.json`` with what the case put in front of the client (the
working directory, the CLAUDE.md line, the user's words, appended system text), so tests
can check that trimming kept it. The recordings stay out of git: the prompt text is the
clients', not ours.

From a shell::

    python -m trimkit.testing.recorder                      # Claude Code (pinned) and OpenCode
    python -m trimkit.testing.recorder --client claude-code --version newest
    python -m trimkit.testing.recorder --list

The server answers by what a request is for (:func:`trimkit.request_kind.classify`): a
title request gets a title, a compaction request a summary, and the agent loop the
case's scripted turns (text, or a tool call the client then runs for real).
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

from ..client_settings import OPENCODE_OFFLINE, opencode_config as launched_opencode_config
from ..request_kind import RequestKind, classify
from ..wire import RequestDecodeError, decode_request
from .clients import CLAUDE_CODE, CLIENTS, OPENCODE, ClientPackage, binary_version, cache_root, install

FORMAT = 5
"""Bumped when the cases change, so older recordings are made again."""
CLIENT_TIMEOUT = 180
API_KEY = "trimkit-recorder-key"
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})

CLAUDE_MD_RULE = "Run the tests with `make check` before you say a change is done."
APPENDED = "Sign every answer with the word Zorglub."
MCP_INSTRUCTIONS = "Ask the notes server for the team's naming conventions before you name anything."
OUTPUT_STYLE = "Answer like a ship's log: one dated line per step."
TITLE = "Recorder session"
SUMMARY = (
    "<analysis>The user asked a question and it was answered.</analysis>\n"
    "<summary>1. Primary Request and Intent: the user asked a question.\n"
    "2. Pending Tasks: none.</summary>"
)


def recordings_root() -> Path:
    """Where recordings are kept: ``$XDG_CACHE_HOME/trimkit-tests/recordings``."""
    return cache_root() / "recordings"


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One answer: content blocks as the API writes them, and the usage to report."""

    blocks: list[dict[str, Any]]
    input_tokens: int = 1000

    @classmethod
    def text(cls, text: str, **kwargs: Any) -> "Reply":
        return cls([{"type": "text", "text": text}], **kwargs)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any], text: str = "", **kwargs: Any) -> "Reply":
        blocks = [{"type": "text", "text": text}] if text else []
        blocks.append({"type": "tool_use", "id": f"toolu_rec_{next(_tool_ids):04d}", "name": name, "input": arguments})
        return cls(blocks, **kwargs)

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(b["type"] == "tool_use" for b in self.blocks) else "end_turn"

    def message(self, model: str, message_id: str) -> dict[str, Any]:
        return {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": self.blocks, "stop_reason": self.stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 20,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def events(self, model: str, message_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        start = self.message(model, message_id)
        yield "message_start", {"type": "message_start", "message": {**start, "content": [], "stop_reason": None}}
        for index, block in enumerate(self.blocks):
            if block["type"] == "text":
                yield "content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {"type": "text", "text": ""}}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                yield "content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {**block, "input": {}}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                "usage": {"output_tokens": 20}}
        yield "message_stop", {"type": "message_stop"}


_tool_ids = itertools.count(1)

Responder = Callable[[dict[str, Any], RequestKind], Reply]


def kind_of(body: Any) -> RequestKind:
    try:
        return classify(decode_request(body))
    except (RequestDecodeError, TypeError, ValueError):
        return RequestKind.MAIN


# --------------------------------------------------------------------------- the server


class RecordingServer:
    """An Anthropic-shaped server on 127.0.0.1 that saves each POST and answers with ``responder``.

    ``with RecordingServer(directory, responder) as server: server.url``. Requests are
    saved as ``001.json``, ``002.json``… in arrival order; ``count_tokens`` calls are
    saved too and answered with a rough count.
    """

    def __init__(self, directory: Path, responder: Responder):
        self.directory = Path(directory)
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._json(200, {"data": [], "has_more": False})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                recorder._save(self.path, dict(self.headers), body)
                if not isinstance(body, dict) or "/v1/messages" not in self.path:
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                elif "count_tokens" in self.path:
                    self._json(200, {"input_tokens": max(1, len(raw) // 4)})
                else:
                    self._answer(body)

            def _json(self, status: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _answer(self, body: dict[str, Any]) -> None:
                reply = recorder.responder(body, kind_of(body))
                model, message_id = str(body.get("model", "model")), f"msg_rec_{next(recorder._ids):04d}"
                if not body.get("stream"):
                    self._json(200, reply.message(model, message_id))
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in reply.events(model, message_id):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="trimkit-recorder", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _save(self, path: str, headers: dict[str, str], body: Any) -> None:
        headers = {k: "[redacted]" if k.lower() in SECRET_HEADERS else v for k, v in headers.items()}
        with self._lock:
            entry = {"n": len(self.requests) + 1, "path": path, "headers": headers, "body": body}
            self.requests.append(entry)
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{entry['n']:03d}.json").write_text(json.dumps(entry, indent=1, ensure_ascii=False))

    def __enter__(self) -> "RecordingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------- the project


def make_project(root: Path) -> Path:
    """A small git repository with a CLAUDE.md / AGENTS.md and one uncommitted change."""
    work = root / "shop"
    (work / "src").mkdir(parents=True)
    instructions = f"# Shop\n\n{CLAUDE_MD_RULE}\n"
    (work / "CLAUDE.md").write_text(instructions)
    (work / "AGENTS.md").write_text(instructions)
    (work / "src" / "cart.py").write_text("def total(prices):\n    return sum(prices)\n")
    git = ["git", "-c", "user.name=Recorder", "-c", "user.email=recorder@example.invalid",
           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "Add the cart"]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    (work / "src" / "cart.py").write_text("def total(prices):\n    return round(sum(prices), 2)\n")
    return work


MCP_SERVER = '''import json, sys
INSTRUCTIONS = {instructions!r}
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method, result = message.get("method"), None
    if method == "initialize":
        result = {{"protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                  "capabilities": {{"tools": {{}}}}, "serverInfo": {{"name": "notes", "version": "1.0.0"}},
                  "instructions": INSTRUCTIONS}}
    elif method == "tools/list":
        result = {{"tools": [{{"name": "lookup_note", "description": "Look up a team note by topic.",
                              "inputSchema": {{"type": "object", "properties": {{"topic": {{"type": "string"}}}},
                                              "required": ["topic"]}}}}]}}
    elif method in ("resources/list", "prompts/list"):
        result = {{method.split("/")[0]: []}}
    reply = {{"jsonrpc": "2.0", "id": message["id"]}}
    if result is None:
        reply["error"] = {{"code": -32601, "message": "method not found"}}
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\\n")
    sys.stdout.flush()
'''


def write_mcp_server(root: Path) -> Path:
    """A tiny MCP server over stdio whose ``initialize`` answer carries instructions."""
    path = root / "mcp_notes.py"
    path.write_text(MCP_SERVER.format(instructions=MCP_INSTRUCTIONS))
    return path


# --------------------------------------------------------------------------- cases


@dataclass
class Run:
    """What one case puts in front of the client: where, the words, the extra arguments."""

    work: Path
    home: Path
    prompt: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    then: list[list[str]] = field(default_factory=list)
    """Further invocations in the same project and home (their whole argument lists)."""
    user_lines: list[str] = field(default_factory=list)
    """Lines of the user's own that the client wraps into its prompt (a style's heading)."""
    typed: list[str] = field(default_factory=list)
    """For the terminal UI: the prompts typed, one after the other (``prompt`` is the first)."""
    model: str | None = None
    """OpenCode: a served model's name, configured the way ``trimkit launch opencode`` does
    (OpenCode picks its system prompt by the model's name)."""


def _last_user(body: dict[str, Any]) -> list[dict[str, Any]]:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    return []


def _has_result(body: dict[str, Any]) -> bool:
    return any(b.get("type") == "tool_result" for b in _last_user(body))


def _any_result(body: dict[str, Any]) -> bool:
    """Whether any earlier tool call has come back (sub-agents may answer later, as a notice)."""
    return any(
        isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
        for m in body.get("messages") or ()
    )


def _tool_named(body: dict[str, Any], *names: str) -> str | None:
    offered = {t.get("name") for t in body.get("tools") or []}
    return next((n for n in names if n in offered), None)


def side_reply(body: dict[str, Any], kind: RequestKind) -> Reply | None:
    """The answer to a request that is not the agent loop's, whatever the case."""
    if kind is RequestKind.TITLE:
        return Reply.text(json.dumps({"title": TITLE}) if body.get("output_config") else TITLE)
    if kind is RequestKind.SUGGESTION:
        return Reply.text("run the tests")
    if kind is RequestKind.COMPACTION:
        return Reply.text(SUMMARY)
    return None


@dataclass(frozen=True)
class Case:
    """A recorded situation: how to set it up and how the agent loop is answered.

    An ``interactive`` case drives the client's terminal UI through tmux (the one way
    to see what it sends on its own: titles with prompts, suggested next prompts)."""

    name: str
    client: str
    about: str
    prepare: Callable[[Path, Path], Run]
    answer: Callable[[dict[str, Any], Run], Reply]
    interactive: bool = False


def _plain(prompt: str, args: list[str] | None = None, model: str | None = None,
           **expect: Any) -> Callable[[Path, Path], Run]:
    def prepare(work: Path, home: Path) -> Run:
        return Run(work, home, prompt, list(args or []), expect=expect, model=model)

    return prepare


def _say(text: str) -> Callable[[dict[str, Any], Run], Reply]:
    return lambda body, run: Reply.text(text)


def _write_then_done(body: dict[str, Any], run: Run) -> Reply:
    if _has_result(body):
        return Reply.text("Wrote hello.txt.")
    name = _tool_named(body, "Write", "write")
    if name is None:
        return Reply.text("I cannot write files here.")
    key = "file_path" if name == "Write" else "filePath"
    return Reply.tool(name, {key: str(run.work / "hello.txt"), "content": "hello world\n"}, "I'll write it.")


def _read_then_done(body: dict[str, Any], run: Run) -> Reply:
    if _has_result(body):
        return Reply.text("The cart module sums prices.")
    name = _tool_named(body, "Read", "read")
    key = "file_path" if name == "Read" else "filePath"
    return Reply.tool(name or "Read", {key: str(run.work / "src" / "cart.py")})


LOCAL_MODEL = "Qwen3-Coder-30B-A3B-Instruct-4bit"
SUBAGENT_PROMPT = "List the Python files under src and report their names."
SUBAGENT_ANSWER = "The only Python file is src/cart.py, two lines long."


def _subagent(body: dict[str, Any], run: Run) -> Reply:
    if _any_result(body):
        return Reply.text("The sub-agent found src/cart.py.")
    if any(SUBAGENT_PROMPT in b.get("text", "") for b in _last_user(body) if b.get("type") == "text"):
        return Reply.text(SUBAGENT_ANSWER)
    name = _tool_named(body, "Agent", "Task", "task")
    if name is None:
        return Reply.text("No sub-agents here.")
    return Reply.tool(name, {"description": "Find Python files", "prompt": SUBAGENT_PROMPT,
                             "subagent_type": "general-purpose"})


def _with_mcp(work: Path, home: Path) -> Run:
    server = write_mcp_server(work.parent)
    config = {"mcpServers": {"notes": {"type": "stdio", "command": sys.executable, "args": [str(server)]}}}
    path = work.parent / "mcp.json"
    path.write_text(json.dumps(config))
    return Run(work, home, "which naming convention should I use?", ["--mcp-config", str(path)],
               expect={"appended": MCP_INSTRUCTIONS}, user_lines=["## notes", MCP_INSTRUCTIONS])


def _with_output_style(work: Path, home: Path) -> Run:
    styles = work / ".claude" / "output-styles"
    styles.mkdir(parents=True)
    (styles / "log.md").write_text(f"---\nname: Log\ndescription: Terse log lines\n---\n\n{OUTPUT_STYLE}\n")
    (work / ".claude" / "settings.local.json").write_text(json.dumps({"outputStyle": "Log"}))
    return Run(work, home, "what is 2+2", expect={"appended": OUTPUT_STYLE},
               user_lines=["# Output Style: Log", OUTPUT_STYLE])


CASES: tuple[Case, ...] = (
    Case("first_turn", "claude-code", "the first turn in a git repo with a CLAUDE.md (and its title request)",
         _plain("what is 2+2"), _say("4")),
    Case("tool_round_trip", "claude-code", "a Write call and its result",
         _plain("create hello.txt containing hello world", ["--allowedTools", "Write"]), _write_then_done),
    Case("compaction", "claude-code", "a Read round trip, then /compact in the same session",
         lambda work, home: Run(work, home, "what does src/cart.py do?", ["--allowedTools", "Read"],
                                then=[["-p", "/compact", "--continue"]]),
         _read_then_done),
    Case("subagent", "claude-code", "a sub-agent (Agent/Task tool) and its own request",
         _plain("find the Python files, using a sub-agent", subagent_answer=SUBAGENT_ANSWER), _subagent),
    Case("append_system_prompt", "claude-code", "--append-system-prompt text",
         _plain("what is 2+2", ["--append-system-prompt", APPENDED], appended=APPENDED), _say("4")),
    Case("mcp_instructions", "claude-code", "an MCP server whose initialize answer carries instructions",
         _with_mcp, _say("Use snake_case.")),
    Case("output_style", "claude-code", "a custom output style chosen in the project's settings",
         _with_output_style, _say("4")),
    Case("terminal_ui", "claude-code", "two prompts typed into the terminal UI (tmux), prompt suggestions on",
         lambda work, home: Run(work, home, "what is 2+2", typed=["what is 2+2", "and 3+3"],
                                env={"CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION": "true"}),
         _say("4"), interactive=True),
    Case("first_turn", "opencode", "the first turn in a git repo with an AGENTS.md (and its title request)",
         _plain("what is 2+2"), _say("4")),
    Case("tool_round_trip", "opencode", "a write call and its result, on a local model as trimkit launch sets it",
         _plain("create hello.txt containing hello world", model=LOCAL_MODEL), _write_then_done),
    Case("first_turn_local_model", "opencode", "the first turn on a local model as trimkit launch sets it",
         _plain("what is 2+2", model=LOCAL_MODEL), _say("4")),
    Case("first_turn_gpt_oss", "opencode", "the first turn on a model named gpt-oss (OpenCode's other prompt)",
         _plain("what is 2+2", model="gpt-oss-20b"), _say("4")),
)


def cases_for(client: str) -> list[Case]:
    return [case for case in CASES if case.client == client]


# --------------------------------------------------------------------------- running clients


def _base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), SHELL="/bin/bash", USER="recorder")
    return env


def claude_env(url: str, home: Path) -> dict[str, str]:
    """Claude Code on the recording server, with no other traffic that could reach out."""
    return {**_base_env(home), "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}


def opencode_config(url: str, model: str = "claude-sonnet-4-5", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"$schema": "https://opencode.ai/config.json",
            "provider": {"anthropic": {"options": {"baseURL": f"{url}/v1", "apiKey": API_KEY}}},
            "model": f"anthropic/{model}", "autoupdate": False, "share": "disabled", **(extra or {})}


def opencode_env(url: str, home: Path, config: dict[str, Any] | None = None) -> dict[str, str]:
    """OpenCode on the recording server; its config in ``OPENCODE_CONFIG_CONTENT``, its state under ``home``."""
    env = _base_env(home)
    env.update(
        XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"), XDG_STATE_HOME=str(home / ".local" / "state"),
        OPENCODE_CONFIG_CONTENT=json.dumps(config or opencode_config(url)), **OPENCODE_OFFLINE,
    )
    return env


def client_command(client: str, binary: Path, run: Run) -> list[str]:
    if client == "opencode":
        return [str(binary), "run", run.prompt, *run.args]
    return [str(binary), "-p", run.prompt, *run.args]


def client_env(client: str, url: str, run: Run) -> dict[str, str]:
    if client == "opencode" and run.model:
        env = opencode_env(url, run.home, launched_opencode_config(url, API_KEY, run.model, 32_768, 4_096))
    else:
        env = opencode_env(url, run.home) if client == "opencode" else claude_env(url, run.home)
    return {**env, "PWD": str(run.work), **run.env}


TUI_SIZE = ("200", "50")
TUI_TIMEOUT = 60


def _wait(predicate: Callable[[], bool], timeout: float = TUI_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def drive_terminal_ui(binary: Path, run: Run, env: dict[str, str], server: RecordingServer) -> tuple[int | None, str]:
    """Type ``run.typed`` into the client's terminal UI in a tmux session; returns (status, screen).

    The home directory is set up as after onboarding (theme chosen, the project trusted,
    the API key approved), so the UI goes straight to its prompt. Each prompt is typed
    once the one before has been answered and the UI has settled.
    """
    if shutil.which("tmux") is None:
        return None, "tmux is not installed"
    (run.home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark", "numStartups": 5,
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "projects": {str(run.work): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }))
    session = f"trimkit-rec-{os.getpid()}-{next(_tool_ids)}"
    command = ["env", "-i", *(f"{k}={v}" for k, v in {**env, "TERM": "xterm-256color"}.items()), str(binary)]
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", TUI_SIZE[0], "-y", TUI_SIZE[1],
                    "-c", str(run.work), subprocess.list2cmdline(command)], check=True)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    panes = subprocess.run([*tmux, "list-panes", "-t", session, "-F", "#{pane_pid}"], capture_output=True, text=True)
    pids = [int(pid) for pid in panes.stdout.split()]

    try:
        ready = _wait(lambda: "❯" in screen() or "? for shortcuts" in screen())
        for prompt in run.typed if ready else ():
            answered = len(server.requests)
            subprocess.run([*tmux, "send-keys", "-t", session, "-l", prompt])
            subprocess.run([*tmux, "send-keys", "-t", session, "Enter"])
            _wait(lambda: any(prompt in json.dumps(e["body"]) for e in server.requests[answered:]
                              if isinstance(e["body"], dict) and kind_of(e["body"]) is RequestKind.MAIN))
            settled = len(server.requests)
            time.sleep(3)
            _wait(lambda: len(server.requests) == settled, timeout=5)
        return (0 if ready else None), screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        _wait(lambda: not any(_alive(pid) for pid in pids), timeout=15)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_case(case: Case, binary: Path, directory: Path) -> dict[str, Any]:
    """Run one case; its requests go to ``directory``. Returns its ``case.json`` manifest."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="trimkit-rec-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        work, home = make_project(root), root / "home"
        home.mkdir()
        run = case.prepare(work, home)

        def responder(body: dict[str, Any], kind: RequestKind) -> Reply:
            return side_reply(body, kind) or case.answer(body, run)

        started = time.monotonic()
        commands = [client_command(case.client, binary, run), *([str(binary), *args] for args in run.then)]
        status, output = 0, ""
        with RecordingServer(directory, responder) as server:
            if case.interactive:
                status, output = drive_terminal_ui(binary, run, client_env(case.client, server.url, run), server)
                commands = []
            for command in commands:
                try:
                    done = subprocess.run(
                        command, cwd=work, env=client_env(case.client, server.url, run),
                        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                    )
                    status, output = status or done.returncode, output + done.stdout + done.stderr
                except subprocess.TimeoutExpired as exc:
                    status, output = None, output + f"timed out after {CLIENT_TIMEOUT} s: {exc.output or ''}"
                    break
        wrote = (work / "hello.txt").read_text() if (work / "hello.txt").exists() else None
        manifest = {
            "case": case.name, "client": case.client, "about": case.about,
            "exit_status": status, "seconds": round(time.monotonic() - started, 1),
            "requests": len(server.requests), "wrote_hello": wrote,
            "facts": {
                "working_directory": str(work), "platform": sys.platform, "shell": "bash",
                "os_version": platform.release(), "git_branch": "main", "git_change": "src/cart.py",
                "claude_md": CLAUDE_MD_RULE, "user_words": run.prompt, **run.expect,
            },
            "user_lines": run.user_lines or ([run.expect["appended"]] if "appended" in run.expect else []),
        }
    (directory / "client.log").write_text(output)
    (directory / "case.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def record_client(package: ClientPackage, version: str = "pinned", root: Path | None = None,
                  *, force: bool = False, only: list[str] | None = None) -> Path:
    """Record every case of ``package`` at ``version`` (installed from npm if needed).

    Recordings of the same version made by this :data:`FORMAT` are reused unless ``force``.
    A full recording is made aside and moved into place whole, so a reader (another test
    run) never sees half of one. Returns the directory of the recordings.
    """
    binary = install(package, version)
    exact = binary_version(binary)
    target = (root or recordings_root()) / f"{package.name}-{exact}" / f"format-{FORMAT}"
    cases = [c for c in cases_for(package.name) if not only or c.name in only]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be recording the same version
        if only:
            for case in cases:
                record_case(case, binary, target / case.name)
            return target
        if not force and (target / "recorded.json").exists():
            return target
        making = target.with_name(target.name + ".partial")
        shutil.rmtree(making, ignore_errors=True)
        results = {case.name: record_case(case, binary, making / case.name) for case in cases}
        (making / "recorded.json").write_text(json.dumps(
            {"format": FORMAT, "client": package.name, "version": exact,
             "cases": {n: m["requests"] for n, m in results.items()}}, indent=1))
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        making.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- reading recordings


@dataclass(frozen=True)
class Recording:
    """One recorded request, with the case it came from."""

    client: str
    version: str
    case: str
    n: int
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    facts: dict[str, Any]
    user_lines: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)
    """The case's ``case.json``: how the run went."""

    @property
    def id(self) -> str:
        return f"{self.client}-{self.version}/{self.case}/{self.n:03d}"

    @property
    def kind(self) -> RequestKind:
        return kind_of(self.body)

    @property
    def is_messages(self) -> bool:
        return "count_tokens" not in self.path and "/v1/messages" in self.path


FACTS = ("working directory", "platform", "shell", "OS", "git branch", "git status", "CLAUDE.md", "date",
         "user's words", "appended text", "sub-agent's answer")
_DATE = re.compile(r"Today's date(?: is|:) ?([^\n]*?)\.?[ \t]*$", re.M)


def stated_facts(recording: Recording, original: str) -> dict[str, str]:
    """What the model needs, as it reads in any trimmed prompt, for each of :data:`FACTS`
    that the request's rendered text ``original`` states (the others are left out)."""
    f = recording.facts
    date = _DATE.search(original)
    wanted = {
        "working directory": f["working_directory"],
        "platform": f"Platform: {f['platform']}",
        "shell": f"Shell: {f['shell']}",
        "OS": f["os_version"],
        "git branch": f"Current branch: {f['git_branch']}",
        "git status": f"M {f['git_change']}",
        "CLAUDE.md": f["claude_md"],
        "date": date.group(1) if date else None,
        "user's words": f["user_words"],
        "appended text": f.get("appended"),
        "sub-agent's answer": f.get("subagent_answer"),
    }
    return {name: text for name, text in wanted.items() if text and text in original}


def load_recordings(root: Path | None = None) -> list[Recording]:
    """Every complete recording under ``root`` (default :func:`recordings_root`), in a stable order."""
    root = root or recordings_root()
    markers = sorted(root.glob(f"*/format-{FORMAT}/recorded.json"))
    return [r for marker in markers for r in load_client_recordings(marker.parent)]


def load_client_recordings(directory: Path) -> list[Recording]:
    """The recordings of one client version (a directory :func:`record_client` made)."""
    marker = directory / "recorded.json"
    found: list[Recording] = []
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("format") != FORMAT:
            return found
        for case_dir in sorted(p for p in marker.parent.iterdir() if (p / "case.json").is_file()):
            manifest = json.loads((case_dir / "case.json").read_text())
            for file in sorted(case_dir.glob("[0-9][0-9][0-9].json")):
                entry = json.loads(file.read_text())
                if isinstance(entry.get("body"), dict):
                    found.append(Recording(meta["client"], meta["version"], case_dir.name, entry["n"], entry["path"],
                                           entry["headers"], entry["body"], manifest["facts"],
                                           tuple(manifest.get("user_lines", ())), manifest))
    return found


# --------------------------------------------------------------------------- the catalogue


def _system_texts(body: dict[str, Any]) -> list[str]:
    """What the client wrote as its own instructions: the system prompt's blocks and the
    ``role: "system"`` messages. (Reminders in user messages carry results and notices,
    data that must never read as known.)"""
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or ()]
    for message in body.get("messages") or ():
        if message.get("role") == "system":
            content = message.get("content")
            texts.extend([content] if isinstance(content, str) else [b.get("text", "") for b in content or ()
                                                                   if b.get("type") == "text"])
    return texts


def agent_lines(recordings: list[Recording], extra_texts: list[str] = ()) -> set[str]:
    """Fingerprints of the lines the agents wrote themselves in the recorded agent-loop
    requests, plus ``extra_texts``.

    The user's lines are left out: the text a case appended (``--append-system-prompt``,
    an output style, MCP instructions) and the project's instruction file with its
    ``Instructions from:`` line (OpenCode copies it into its system prompt).
    """
    from ..agent_context import fingerprint

    users = {fingerprint(line) for line in f"# Shop\n\n{CLAUDE_MD_RULE}".split("\n") if line.strip()}
    found: set[str] = set()
    for recording in recordings:
        if not recording.is_messages or recording.kind.side:
            continue
        theirs = {fingerprint(line) for text in recording.user_lines for line in text.split("\n") if line.strip()}
        for text in _system_texts(recording.body):
            for line in text.split("\n"):
                if line.strip() and not line.lstrip().startswith("Instructions from:"):
                    found.add(fingerprint(line))
        found -= theirs
    for text in extra_texts:
        found.update(fingerprint(line) for line in text.split("\n") if line.strip())
    return found - users


def write_catalogue(root: Path | None = None, path: Path | None = None) -> Path:
    """Rewrite ``agent_lines.txt`` from the recordings under ``root`` and trimkit's example request."""
    from ..agent_context import CATALOGUE

    recordings = load_recordings(root)
    example = Path(__file__).resolve().parents[3] / "examples" / "claude-code-request.json"
    extra = _system_texts(json.loads(example.read_text())) if example.is_file() else []
    versions = sorted({f"{r.client} {r.version}" for r in recordings})
    lines = sorted(agent_lines(recordings, extra))
    path = path or CATALOGUE
    header = [
        "# Fingerprints of lines coding agents write in their own prompts (trimkit.agent_context.fingerprint).",
        "# A line with a fingerprint here is the agent's own text; compact prompts stand in for it.",
        "# Made by: python -m trimkit.testing.recorder --catalogue, from recordings of",
        *(f"#   {v}" for v in versions),
        *(["#   examples/claude-code-request.json"] if extra else []),
    ]
    path.write_text("\n".join(header + lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimkit.testing.recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=sorted(CLIENTS), action="append",
                        help="client to record (default: all)")
    parser.add_argument("--version", default="pinned", help="pinned (default), newest, or an exact version")
    parser.add_argument("--case", action="append", help="record only this case (repeatable)")
    parser.add_argument("--out", type=Path, help=f"recordings directory (default {recordings_root()})")
    parser.add_argument("--force", action="store_true", help="record again even if recordings exist")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--catalogue", action="store_true",
                        help="rewrite trimkit's catalogue of agent lines from the recordings and exit")
    args = parser.parse_args(argv)
    if args.catalogue:
        print(f"wrote {write_catalogue(args.out)}")
        return 0
    if args.list:
        for case in CASES:
            print(f"{case.client:<12} {case.name:<22} {case.about}")
        return 0
    for name in args.client or sorted(CLIENTS):
        target = record_client(CLIENTS[name], args.version, args.out, force=args.force, only=args.case)
        for manifest_file in sorted(target.glob("*/case.json")):
            manifest = json.loads(manifest_file.read_text())
            print(f"{target.parent.name:<24} {manifest['case']:<22} {manifest['requests']:>3} requests, "
                  f"exit {manifest['exit_status']}, {manifest['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
