"""The size goals for a Claude-Code-shaped first request, and what the small tier keeps.

The goals are the project's (issue 2): system plus messages, as the model reads them,
within 4,000 characters on the small tier and 8,000 on the medium one. Sizes are
asserted here and nowhere else.
"""

from __future__ import annotations

import re

from tests.fixtures import claude_code as cc
from tests.fixtures import claude_code_text as cc_text
from trimkit import ModelProfile, Pipeline
from trimkit.render import prompt_text

GOALS = {"small": 4_000, "medium": 8_000}
CORE_TOOLS = {"Read", "Write", "Edit", "Bash", "Glob", "Grep"}
PIPELINE = Pipeline(entry_points=False)


def trimmed(tier: str):
    return PIPELINE.trim(cc.first_request(cc.EXAMPLE_PROMPT), ModelProfile.for_tier(tier))


def test_first_request_meets_the_size_goals_and_small_keeps_what_matters():
    for tier, goal in GOALS.items():
        assert len(prompt_text(trimmed(tier).request)) <= goal, tier
    small = trimmed("small")
    text = prompt_text(small.request)
    assert cc.EXAMPLE_PROMPT in text
    assert cc_text.CLAUDE_MD.strip() in text
    assert f"Working directory: {cc_text.CWD}" in text
    assert set(small.carry.tool_names) == CORE_TOOLS and len(small.carry.tool_names) == 6
    assert set(re.findall(r'<tool name="([^"]+)">', text)) == CORE_TOOLS


def test_small_tier_keeps_hook_context_environment_and_every_required_parameter():
    text = prompt_text(trimmed("small").request)
    assert cc_text.SESSION_START_HOOK in text
    for fact in ("Platform: linux", "Shell: bash", "OS Version: ", "Is directory a git repo: Yes",
                 "Current branch: main", "M src/shop/cart.py", "?? notes.txt", "Recent commits:"):
        assert fact in text
    listed = text.split("\n<tools>\n", 1)[1]
    for tool in cc.tools():
        if tool["name"] in CORE_TOOLS:
            body = listed.split(f'<tool name="{tool["name"]}">\n', 1)[1].split("</tool>", 1)[0]
            assert re.findall(r'<parameter name="([^"]+)"', body) == tool["input_schema"]["required"]
            assert "…" not in body
