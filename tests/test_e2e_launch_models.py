"""Claude Code itself through ``trimkit launch claude`` on a server of two tiny MLX models.

The server offers a larger and a smaller random model (each built to end its turns
after a few tokens, since Claude Code treats a ``max_tokens`` stop as a failure).
``launch`` points opus and sonnet at the larger one and haiku, small-fast and
sub-agents at the smaller one; the per-model request counts of ``/v1/models`` show
where Claude Code's requests went.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from trimkit.testing import spawn_server, stop_server

pytestmark = pytest.mark.e2e


def requests_by_model(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as response:
        return {m["id"]: m["requests"] for m in json.load(response)["data"]}


def launch(claude_bin, url: str, work, home, *args: str) -> subprocess.CompletedProcess:
    """``trimkit launch claude --port PORT ARGS`` in ``work``, on the server already running at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "TRIMKIT_"))}
    env.update(HOME=str(home), TRIMKIT_CLAUDE_BIN=str(claude_bin), DISABLE_AUTOUPDATER="1", HF_HUB_OFFLINE="1")
    port = url.rsplit(":", 1)[1]
    return subprocess.run([sys.executable, "-m", "trimkit.cli", "launch", "claude", "--port", port, *args],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)


def test_claude_codes_haiku_requests_reach_the_small_model(claude_bin, tmp_path):
    from trimkit.testing.tinymodel import build_tiny_model

    big = build_tiny_model(tmp_path / "big-coder", hidden=128, layers=2, heads=2, eos_bias=2.5, seed=1)
    small = build_tiny_model(tmp_path / "small-coder", eos_bias=2.5, seed=2)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    proc, url = spawn_server(["--models", f"{small},{big}", "--max-output-tokens", "256",
                              "--context-window", "32768"], env={"HF_HUB_OFFLINE": "1"})
    try:
        shown = launch(claude_bin, url, work, home, "--print-env", "json")
        before = requests_by_model(url)
        main_turn = launch(claude_bin, url, work, home, "--", "-p", "say hello")
        after_main = requests_by_model(url)
        haiku_turn = launch(claude_bin, url, work, home, "--", "-p", "--model", "haiku", "say hello")
        after_haiku = requests_by_model(url)
    finally:
        log = stop_server(proc)
    assert shown.returncode == 0, shown.stderr
    env = json.loads(shown.stdout)["env"]
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "big-coder"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["CLAUDE_CODE_SUBAGENT_MODEL"] == "small-coder"
    assert main_turn.returncode == 0, main_turn.stdout + main_turn.stderr + log
    assert haiku_turn.returncode == 0, haiku_turn.stdout + haiku_turn.stderr + log
    assert before == {"small-coder": 0, "big-coder": 0}
    assert after_main["big-coder"] >= 1
    assert after_haiku["small-coder"] > after_main["small-coder"]
    assert after_haiku["big-coder"] == after_main["big-coder"]
    assert "Traceback" not in log
