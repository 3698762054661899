"""The variables ``trimkit launch`` sets stop every side request of the real Claude Code.

Each version runs in ``-p`` mode and in its terminal UI (typed into through tmux)
against a recording server, with launch's environment and then without the variable
under test, so each variable is shown to matter: a variable that stopped nothing would
not be set. Measured (2.1.197 and 2.1.332): the title goes with the first prompt unless
``CLAUDE_CODE_DISABLE_TERMINAL_TITLE=1`` (``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``
stops it in ``-p`` mode only on 2.1.197), a suggested next prompt follows each answer
when suggestions are on.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from trimkit.cli.launch import claude_env
from trimkit.request_kind import RequestKind
from trimkit.testing import recorder
from trimkit.testing.clients import CLAUDE_CODE, ClientUnavailable, install

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["pinned", "newest"])
def claude(request) -> Path:
    try:
        return install(CLAUDE_CODE, request.param)
    except ClientUnavailable as exc:
        pytest.skip(str(exc))


def kinds_sent(binary: Path, overrides: dict[str, str | None], *, interactive: bool) -> list[RequestKind]:
    """The kinds of request Claude Code sends for two prompts, with launch's environment
    changed by ``overrides`` (``None`` removes a variable)."""
    with tempfile.TemporaryDirectory(prefix="trimkit-env-", ignore_cleanup_errors=True) as tmp:
        work = recorder.make_project(Path(tmp))
        home = Path(tmp) / "home"
        home.mkdir()
        run = recorder.Run(work, home, "what is 2+2", typed=["what is 2+2", "and 3+3"])
        with recorder.RecordingServer(Path(tmp) / "requests", lambda body, kind: (
                recorder.side_reply(body, kind) or recorder.Reply.text("4"))) as server:
            env = {**recorder.claude_env(server.url, home), "PWD": str(work),
                   **claude_env(server.url, recorder.API_KEY, "local-model", 32_768, 4_096)}
            for name, value in overrides.items():
                env.pop(name, None) if value is None else env.__setitem__(name, value)
            if interactive:
                status, screen = recorder.drive_terminal_ui(binary, run, env, server)
                assert status == 0, screen
            else:
                done = subprocess.run([str(binary), "-p", run.prompt], cwd=work, env=env, capture_output=True,
                                      text=True, timeout=120, stdin=subprocess.DEVNULL)
                assert done.returncode == 0, done.stdout + done.stderr
        return [recorder.kind_of(e["body"]) for e in server.requests if isinstance(e["body"], dict)]


@pytest.mark.parametrize("interactive", [False, True], ids=["print", "terminal-ui"])
def test_launch_environment_leaves_only_the_users_turns(claude, interactive):
    if interactive and shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    kinds = kinds_sent(claude, {}, interactive=interactive)
    assert kinds == [RequestKind.MAIN] * (2 if interactive else 1)


def test_without_disable_terminal_title_the_terminal_ui_asks_for_a_title(claude):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    kinds = kinds_sent(claude, {"CLAUDE_CODE_DISABLE_TERMINAL_TITLE": None,
                                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": None}, interactive=True)
    assert kinds.count(RequestKind.TITLE) == 1 and kinds.count(RequestKind.MAIN) == 2


def test_with_suggestions_on_the_terminal_ui_asks_for_one_after_each_answer(claude):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    kinds = kinds_sent(claude, {"CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION": "true"}, interactive=True)
    assert kinds.count(RequestKind.SUGGESTION) >= 1 and RequestKind.TITLE not in kinds
