"""A failure no retry can fix reaches real Claude Code as an answer it shows at once.

Claude Code retries a 500 for minutes unless the answer says ``x-should-retry: false``,
shows a 400 at once, and turns an ``error`` event in the middle of a stream into "API
returned an empty or malformed response" (measured with 2.1.197 and 2.1.332; see
docs/launch.md). So each lasting failure must be known before the stream starts and be
answered with a status Claude Code shows, with the fix in the message. The server
counts the attempts: one means Claude Code did not retry.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from trimkit.backends import make_backend
from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer

pytestmark = pytest.mark.e2e


class CountingApp:
    """The app, counting the Messages requests it is asked."""

    def __init__(self, app):
        self.app = app
        self.posts = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/messages":
            self.posts += 1
        await self.app(scope, receive, send)


def run_claude(claude_bin: Path, backend, tmp_path: Path) -> tuple[subprocess.CompletedProcess, int]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    app = CountingApp(create_app(ServerSettings(backend=backend.name), backend=backend))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    with LiveServer(app) as server:
        env.update(HOME=str(home), ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="trimkit-test-key",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")
        done = subprocess.run([str(claude_bin), "-p", "say hi"], cwd=work, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=240)
    return done, app.posts


def mlx_backend(model: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    backend = make_backend(ServerSettings(backend="mlx", model=model))
    assert backend.status().state.value == "error"
    return backend


def test_a_model_that_is_not_downloaded_is_shown_with_the_download_command(claude_bin, tmp_path, monkeypatch):
    backend = mlx_backend("trimkit-tests/not-downloaded", tmp_path, monkeypatch)
    done, posts = run_claude(claude_bin, backend, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and posts == 1, output
    assert "API Error: 500" in output and "hf download trimkit-tests/not-downloaded" in output


def test_a_model_that_fails_to_load_is_shown_with_what_to_do(claude_bin, tmp_path, monkeypatch):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    backend = mlx_backend(str(broken), tmp_path, monkeypatch)
    done, posts = run_claude(claude_bin, backend, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and posts == 1, output
    assert "failed to load model" in output and "serve another model with --model" in output


def test_an_exhausted_replay_script_is_shown_at_once(claude_bin, tmp_path):
    backend = ReplayBackend([])
    done, posts = run_claude(claude_bin, backend, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and posts == 1, output
    assert "replay script exhausted" in output and "give --script a script with a turn for every request" in output


def test_a_prompt_that_cannot_fit_is_shown_as_too_long(claude_bin, tmp_path):
    backend = ReplayBackend(["hi"], profile=ModelProfile(name="replay", context_window=1500, tier="small"))
    done, posts = run_claude(claude_bin, backend, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and posts == 1, output
    assert "Prompt is too long · the request is ~" in output and "(limit " in output
