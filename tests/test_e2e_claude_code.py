"""Claude Code itself (from npm) against a live trimkit server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

import trimkit
from tests.support.servers import replay_server
from trimkit.wire import ToolResultBlock, ToolUseBlock
from tests.support.agents import TrimRecorder, run_launch, work_and_home, write_file_script

pytestmark = pytest.mark.e2e

def run_claude(claude_bin: Path, url: str, prompt: str, cwd: Path, home: Path, *extra: str, timeout: int = 180):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_API_KEY="trimkit-test-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        API_TIMEOUT_MS="600000",
    )
    return subprocess.run(
        [str(claude_bin), "-p", prompt, *extra],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_claude_code_writes_a_file_through_a_scripted_tool_call(claude_bin, tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    target = work / "hello.txt"
    script = write_file_script("Write", "file_path", target)
    recorder = TrimRecorder()
    with replay_server(script, name="replay", window=65_536, pipeline=trimkit.Pipeline(plugins=[recorder])) as server:
        done = run_claude(claude_bin, server.url, "create hello.txt containing hello world", work, home,
                          "--allowedTools", "Write")

    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
    assert len(recorder.results) == 2
    first, follow_up = (r.original for r in recorder.results)
    assert any(t.name == "Write" for t in first.tools or [])
    uses = [b for m in follow_up.messages if isinstance(m.content, list) for b in m.content if isinstance(b, ToolUseBlock)]
    results = [b for m in follow_up.messages if isinstance(m.content, list) for b in m.content if isinstance(b, ToolResultBlock)]
    assert [u.name for u in uses] == ["Write"]
    assert uses[0].input == {"file_path": str(target), "content": "hello world"}
    assert [r.tool_use_id for r in results] == [uses[0].id]
    assert not results[0].is_error
    assert recorder.results[0].report.after.chars < recorder.results[0].report.before.chars / 5


def test_claude_code_runs_against_the_tiny_mlx_model(claude_bin, tmp_path):
    """A real generation path: Claude Code's whole request trimmed, rendered and run on MLX.

    The random model is built to end its turns after a few tokens (``eos_bias``), since
    Claude Code treats a ``max_tokens`` stop as a failed response.
    """
    from trimkit.testing import spawn_server, stop_server
    from trimkit.testing.tinymodel import build_tiny_model

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    model = build_tiny_model(tmp_path / "model", eos_bias=2.5)
    proc, url = spawn_server(
        ["--backend", "mlx", "--model", str(model), "--max-output-tokens", "512"],
        env={"HF_HUB_OFFLINE": "1"},
    )
    try:
        done = run_claude(claude_bin, url, "say hello", work, home)
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
    finally:
        log = stop_server(proc)
    assert done.returncode == 0, done.stdout + done.stderr + log
    assert "Traceback" not in log
    assert health["status"] == "ok" and health["backend"] == "mlx"


def test_launch_claude_runs_claude_code_on_the_replay_backend(claude_bin, tmp_path):
    """``trimkit launch claude`` as a user runs it: it starts the server, Claude Code writes the file."""
    work, home = work_and_home(tmp_path)
    target = work / "hello.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "TRIMKIT_"))}
    env.update(HOME=str(home), TRIMKIT_CLAUDE_BIN=str(claude_bin), DISABLE_AUTOUPDATER="1")
    done = run_launch("claude", write_file_script("Write", "file_path", target),
                      ["-p", "create hello.txt containing hello world", "--allowedTools", "Write"], env, work, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
    assert "stopped the server" in done.stderr


NATIVE_TURNS = {  # family: how its template shows the earlier Write call, and its result
    "gemma4": ("<|tool_call>call:Write{", "<|tool_response>response:Write{value:"),
    "gpt_oss": ("<|start|>assistant to=functions.Write<|channel|>commentary json<|message|>",
                "<|start|>functions.Write to=assistant<|channel|>commentary<|message|>"),
    "qwen3_coder": ("<tool_call>\n<function=Write>\n", "<tool_response>\nFile created successfully"),
    "glm47": ("<tool_call>Write<arg_key>file_path</arg_key>", "<|observation|><tool_response>File created successfully"),
}


@pytest.mark.parametrize("name", sorted(NATIVE_TURNS))
def test_claude_code_writes_a_file_through_a_model_family_in_its_own_format(claude_bin, tmp_path, name):
    """Claude Code against a tiny model of the family, its replies forced token by token.

    The model answers each request from what its prompt holds: the Write call in the
    family's markup first, then, once the tool result is in the prompt, a closing line.
    The prompt must show the tools, the call and its result in the family's own format.
    """
    from trimkit.backends.mlx import MLXBackend
    from trimkit.testing import live_app
    from trimkit.testing.families import Call, Reply, Script, build_family_model, family

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    target = work / "hello.txt"
    fam = family(name)
    model = build_family_model(tmp_path / "model", name)

    def respond(prompt: str):
        opened = prompt.endswith(("<think>", "<think>\n"))  # the template opened reasoning for the model
        if "File created successfully" in prompt:
            return fam.write(Reply(text="Created hello.txt containing hello world."), thinking=opened)
        write = Call("Write", {"file_path": str(target), "content": "hello world"})
        return fam.write(Reply(text="I'll create the file.", calls=(write,), thinking="A new file."), thinking=opened)

    script = Script(model, responder=respond)
    backend = MLXBackend(str(model), logits_processors=script).wait_ready(60)
    try:
        with live_app("mlx", backend, model=str(model)) as server:
            done = run_claude(claude_bin, server.url, "create hello.txt containing hello world", work, home,
                              "--allowedTools", "Write")
    finally:
        backend.close()

    assert done.returncode == 0, done.stdout + done.stderr
    assert target.exists() and target.read_text() == "hello world", done.stdout
    assert "Created hello.txt containing hello world." in done.stdout
    prompts = [script.decode(p) for p in script.prompts]
    call, result = NATIVE_TURNS[name]
    follow_up = next(p for p in prompts if "File created successfully" in p)
    assert call in follow_up and result in follow_up
    assert not any("<function_calls>" in p for p in prompts)  # the model's own convention, not trimkit's XML
