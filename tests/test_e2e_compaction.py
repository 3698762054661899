"""Compaction that fits the local model: a 60-turn session through real Claude Code.

The model (a scripted backend, :class:`trimkit.testing.sessions.ReadingSession`) reads
sixty files of about 3,000 tokens each, one per turn, on a 32 K window: some 180 K
tokens of tool results, so Claude Code must compact several times. With launch's
environment and the pipeline's defaults it makes only the compactions the window
requires (each cycle fills at least half the window), never two in a row, and the work
gets done. It used to compact again at once after each compaction (Claude Code puts the
last files read back whole, which alone refilled the threshold) until it gave up.
"""

from __future__ import annotations

import math

import pytest

from trimkit.cli.launch import claude_env, output_tokens
from trimkit.testing.clients import CLAUDE_CODE, ClientUnavailable, install
from trimkit.testing.sessions import run_session

pytestmark = pytest.mark.e2e

STEPS, WINDOW, TOKENS = 60, 32_768, 3_000


@pytest.fixture(scope="module", params=["pinned", "newest"])
def claude(request):
    try:
        return install(CLAUDE_CODE, request.param)
    except ClientUnavailable as exc:
        pytest.skip(str(exc))


def test_a_sixty_turn_session_compacts_only_as_the_window_requires(claude):
    env = claude_env("{url}", "trimkit", "replay", WINDOW, output_tokens(WINDOW))
    run = run_session(claude, env, STEPS, WINDOW, tokens=TOKENS)
    assert run.exit_status == 0, run.output
    assert run.steps_read == STEPS
    assert not run.back_to_back, run.kinds
    usable = WINDOW - output_tokens(WINDOW)
    at_most = math.ceil(STEPS * TOKENS / (usable / 2))
    assert 1 <= run.compactions <= at_most, (run.compactions, run.prompt_tokens)
    assert max(run.prompt_tokens) <= usable
