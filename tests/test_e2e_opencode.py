"""OpenCode itself (from npm) through trimkit: a tool round trip that changes a file.

The model is the replay backend, saying in trimkit's tool-call convention what a model
would; OpenCode's title request is answered without it (``quick_titles``), so the
script holds the agent loop's turns only. tests/test_e2e_perimeter.py runs the same
inside a network namespace where only loopback exists.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import trimkit
from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer
from trimkit.wire import ToolResultBlock, ToolUseBlock
from tests.support.agents import TrimRecorder, run_launch, work_and_home, write_file_script

pytestmark = pytest.mark.e2e


QUICK_TITLES = ("--quick-titles", "true")
"""OpenCode asks for a title with the first prompt; answered without the model, it takes no scripted turn."""


def write_script(target: Path) -> list[str]:
    return write_file_script("write", "filePath", target)


def isolated_env(home: Path, work: Path, **extra: str) -> dict[str, str]:
    """The environment without the machine's own provider settings, OpenCode's state under
    ``home``, and ``PWD`` at ``work`` (OpenCode takes its project from ``PWD``)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE", "OPENCODE", "TRIMKIT_", "XDG_"))}
    env.update(HOME=str(home), PWD=str(work), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_STATE_HOME=str(home / ".local/state"), **extra)
    return env


def test_opencode_writes_a_file_through_a_scripted_tool_call(opencode_bin, tmp_path):
    from trimkit.cli.launch import Served
    from trimkit.cli.launch_opencode import opencode_env

    work, home = work_and_home(tmp_path)
    target = work / "hello.txt"
    recorder = TrimRecorder()
    backend = ReplayBackend(write_script(target), profile=ModelProfile(name="replay", context_window=65_536, tier="small"))
    app = create_app(ServerSettings(backend="replay", quick_titles=True), backend=backend,
                     pipeline=trimkit.Pipeline(plugins=[recorder]))
    with LiveServer(app) as server:
        env = isolated_env(home, work, **opencode_env(Served(server.url, "trimkit", "replay", 65_536, 8192)))
        done = subprocess.run([str(opencode_bin), "run", "create hello.txt containing hello world"], cwd=work,
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
    main = [r for r in recorder.results if r.original.tools]
    assert len(main) == 2
    first, follow_up = (r.original for r in main)
    assert {"bash", "read", "edit", "write", "glob", "grep"} <= {t.name for t in first.tools}
    assert main[0].carry.recognized_agent == "opencode"
    assert main[0].carry.tool_names == ["bash", "edit", "glob", "grep", "read", "write"]
    uses = [b for m in follow_up.messages if isinstance(m.content, list) for b in m.content if isinstance(b, ToolUseBlock)]
    results = [b for m in follow_up.messages if isinstance(m.content, list) for b in m.content
               if isinstance(b, ToolResultBlock)]
    assert [(u.name, u.input) for u in uses] == [("write", {"filePath": str(target), "content": "hello world"})]
    assert [r.tool_use_id for r in results] == [uses[0].id] and not results[0].is_error
    assert main[0].report.after.chars < main[0].report.before.chars / 4


def test_launch_opencode_runs_opencode_on_the_replay_backend(opencode_bin, tmp_path):
    """``trimkit launch opencode`` as a user runs it: it starts the server, OpenCode writes the file."""
    work, home = work_and_home(tmp_path)
    target = work / "hello.txt"
    done = run_launch("opencode", write_script(target), ["run", "create hello.txt containing hello world"],
                      isolated_env(home, work, TRIMKIT_OPENCODE_BIN=str(opencode_bin)), work, tmp_path,
                      settings=QUICK_TITLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
    assert "stopped the server" in done.stderr
