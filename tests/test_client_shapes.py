"""The whole pipeline on the shapes today's clients send: nothing the model needs is lost.

The requests are written by us in the shapes recorded from Claude Code 2.1.197 and
2.1.332 and OpenCode 1.18 (see tests/fixtures/client_shapes.py); the same checks run
on the recordings themselves in tests/test_recordings.py.
"""

from __future__ import annotations

import re

import pytest

import trimkit
from tests.fixtures import client_shapes as shapes
from trimkit import ModelProfile
from trimkit.render import chat_messages, prompt_text
from trimkit.wire import system_text

PIPELINE = trimkit.Pipeline({"system_prompt": {"known_text": shapes.OWN_TEXT}}, entry_points=False)
TIERS = ("small", "medium", "large")
CLAUDE_CODE = {"2.1.197": shapes.claude_code_2_1_197, "2.1.332": shapes.claude_code_2_1_332}


def trim(request, tier):
    return PIPELINE.trim(request, ModelProfile.for_tier(tier))


def claude_code_facts() -> list[str]:
    return [shapes.CWD, "linux", "bash", shapes.OS, "Current branch: main", "M src/cart.py", "5f33baf Add the cart",
            shapes.RULE, shapes.TODAY]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("version", CLAUDE_CODE)
def test_claude_code_environment_git_instructions_and_date_survive_every_tier(version, tier):
    result = trim(CLAUDE_CODE[version]("count the carts"), tier)
    text = prompt_text(result.request)
    for fact in claude_code_facts():
        assert fact in text, fact
    users = [m["content"] for m in chat_messages(result.request) if m["role"] == "user"]
    assert len(users) == 1 and "count the carts" in users[0]
    if tier != "large":
        assert users[0].endswith("count the carts")


@pytest.mark.parametrize("tier", ("small", "medium"))
@pytest.mark.parametrize("version", CLAUDE_CODE)
def test_claude_code_facts_are_written_the_same_way_whatever_the_version(version, tier):
    text = system_text(trim(CLAUDE_CODE[version](), tier).request)
    assert f"# Environment\nWorking directory: {shapes.CWD}\nIs directory a git repo: true\nPlatform: linux\n" in text
    assert "gitStatus: as of the start of the conversation.\nCurrent branch: main" in text
    assert f"Today's date: {shapes.TODAY}." in text
    assert "powered by the model" not in text and "knowledge cutoff" not in text.lower()
    assert text.count("# Environment") == 1


@pytest.mark.parametrize("tier", TIERS)
def test_opencode_environment_and_agents_md_survive_every_tier(tier):
    result = trim(shapes.opencode_1_18("count the carts"), tier)
    text = prompt_text(result.request)
    for fact in (f"Working directory: {shapes.CWD}", "Platform: linux", "Mon Nov 30 2026", shapes.RULE,
                 f"Instructions from: {shapes.CWD}/AGENTS.md", '"count the carts"'):
        assert fact in text, fact
    assert result.carry.recognized_agent == "opencode"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("what", ("appended", "mcp", "style"))
@pytest.mark.parametrize("version", CLAUDE_CODE)
def test_text_the_user_added_to_the_system_prompt_survives_every_tier(version, what, tier):
    text = {"appended": shapes.APPENDED, "mcp": shapes.MCP_TEXT, "style": shapes.STYLE}[what]
    result = trim(CLAUDE_CODE[version](**{what: text}), tier)
    assert text in (prompt_text(result.request) if tier == "large" else system_text(result.request))


@pytest.mark.parametrize("tier", ("small", "medium"))
def test_appended_text_stands_alone_rather_than_under_the_agents_last_heading(tier):
    text = system_text(trim(shapes.claude_code_2_1_197(appended=shapes.APPENDED), tier).request)
    assert "# Context management" not in text
    assert f"\n\n{shapes.APPENDED}\n\n" in text


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("make", [*CLAUDE_CODE.values(), shapes.opencode_1_18])
def test_emptied_system_messages_leave_no_marker_in_the_users_turn(make, tier):
    result = trim(make("say hi"), tier)
    assert "(no content)" not in prompt_text(result.request)
    if tier != "large":
        assert [m.role for m in result.request.messages] == ["user"]
        assert chat_messages(result.request)[-1]["content"].endswith("say hi") or \
            chat_messages(result.request)[-1]["content"].endswith('"say hi"')


@pytest.mark.parametrize("tier", ("small", "medium"))
def test_lines_the_stage_does_not_know_are_kept_verbatim(tier):
    request = shapes.claude_code_2_1_197()
    main = request["system"][2]["text"]
    main = main.replace("# Context management", "# Sandbox\nFiles under /srv are read-only.\n\n# Context management")
    main = main.replace(" - Shell: bash", " - Shell: bash\n - Node: v22.3.0")
    request["system"][2]["text"] = main.replace(" - Prefer the dedicated", " - Never run `rm -rf`.\n - Prefer the dedicated")
    text = system_text(trim(request, tier).request)
    assert "# Sandbox\nFiles under /srv are read-only." in text
    assert " - Never run `rm -rf`." in text and "# Harness" not in text
    assert "Node: v22.3.0" in text.split("# Environment", 1)[1]
    assert "Prefer the dedicated file tools" not in text


def test_a_prompt_in_a_shape_it_knows_but_with_words_it_does_not_is_kept_whole():
    """Reworded guidance is not dropped: trimming gets less thorough, never lossy."""
    plain = trimkit.Pipeline(entry_points=False)
    request = shapes.claude_code_2_1_197()
    text = system_text(plain.trim(request, ModelProfile.for_tier("small")).request)
    for line in shapes.GUIDANCE.split("\n"):
        if line and not line.startswith("#"):
            assert line in text, line
    assert f"Working directory: {shapes.CWD}" in text


def _outside_tools(text: str) -> str:
    return text.split("To call a tool, write:", 1)[0]


@pytest.mark.parametrize("tier", ("small", "medium"))
def test_compact_prompts_speak_only_of_tools_the_client_offers(tier):
    claude = _outside_tools(system_text(trim(shapes.claude_code_2_1_197(), tier).request))
    assert not re.search(r"\b(Glob|Grep|glob|grep tool)\b", claude)
    assert " over find" not in claude and " over grep" not in claude
    opencode = _outside_tools(system_text(trim(shapes.opencode_1_18(), tier).request))
    assert not re.search(r"\b(Edit|Write|Bash|Glob|Grep)\b|with Read", opencode)
    if tier == "medium":
        assert "Read over cat, Edit over sed." in claude
        assert "read over cat, edit over sed, glob over find, grep over grep." in opencode


def test_opencode_tools_meet_the_tier_allow_lists_by_their_lowercase_names():
    small = trim(shapes.opencode_1_18(), "small")
    assert small.carry.tool_names == ["bash", "read", "edit", "write", "glob", "grep"]
    text = system_text(small.request)
    assert '<parameter name="filePath"' in text and '<parameter name="oldString"' in text
