"""The Claude Code fixtures keep the shape and sizes the trimming stages are tuned for."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.claude_code import (
    EXAMPLE_PATH,
    EXAMPLE_PROMPT,
    SESSION_PROMPT,
    TOOLS,
    first_request,
    session,
    session_prefixes,
    strip_cache_control,
    system_blocks,
    title_request,
    tools,
)
from trimkit.wire import (
    ToolResultBlock,
    ToolUseBlock,
    block_text,
    decode_request,
    message_blocks,
    to_builtins,
)

TOOL_NAMES = {
    "Task", "Bash", "Glob", "Grep", "LS", "ExitPlanMode", "Read", "Edit", "MultiEdit", "Write",
    "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell", "SlashCommand",
    "Skill", "AskUserQuestion", "EnterPlanMode", "TaskCreate", "TaskUpdate", "TaskList",
    "ToolSearch", "mcp__ide__getDiagnostics",
}  # fmt: skip


@pytest.fixture(scope="module")
def prefixes() -> list[dict]:
    return session_prefixes(12)


def size(obj: object) -> int:
    return len(json.dumps(obj))


def test_first_request_size_and_fields():
    req = first_request()
    assert 80_000 <= size(req) <= 95_000
    assert req["model"] == "claude-opus-4-8" and req["max_tokens"] == 64000
    assert req["stream"] is True
    assert req["thinking"] == {"type": "adaptive"}
    assert req["output_config"] == {"effort": "high"}
    assert isinstance(json.loads(req["metadata"]["user_id"]), dict)
    assert [m["role"] for m in req["messages"]] == ["user", "system"]
    assert 5_000 <= sum(len(b["text"]) for b in req["messages"][1]["content"]) <= 7_000


def test_tools_shape_and_size():
    assert len(TOOLS) == 25 and {t["name"] for t in TOOLS} == TOOL_NAMES
    assert 70_000 <= size(TOOLS) <= 78_000
    longest = max(TOOLS, key=lambda t: len(t["description"]))
    assert longest["name"] == "Bash" and len(longest["description"]) >= 15_000
    for tool in TOOLS:
        schema = tool["input_schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", ())) <= set(schema["properties"])
    by_name = {t["name"]: t["input_schema"] for t in TOOLS}
    assert by_name["Read"]["required"] == ["file_path"]
    assert by_name["Edit"]["properties"]["replace_all"]["default"] is False
    modes = by_name["Grep"]["properties"]["output_mode"]["enum"]
    assert modes == ["content", "files_with_matches", "count"]


def test_tools_returns_independent_copies():
    copy = tools()
    copy[0]["name"] = "Changed"
    assert TOOLS[0]["name"] == "Task" and tools()[0]["name"] == "Task"


def test_system_blocks_layout():
    blocks = system_blocks(nonce="beef")
    assert blocks[0]["text"].endswith("cch=beef") and "cache_control" not in blocks[0]
    assert blocks[1]["text"] == "You are Claude Code, Anthropic's official CLI for Claude."
    assert blocks[1]["cache_control"] == blocks[2]["cache_control"] == {"type": "ephemeral"}
    main = blocks[2]["text"]
    assert 5_000 <= len(main) <= 7_000
    assert "Working directory: /home/dev/shop\nIs directory a git repo: Yes\n" in main
    assert main.index("<env>") < main.index("gitStatus: ")
    assert main.endswith("7aa15b4 Initial shop package layout")


def test_title_request_has_schema_and_no_tools():
    req = title_request("fix the cart")
    assert "tools" not in req and size(req) < 3_000
    assert req["output_config"]["format"]["type"] == "json_schema"
    decode_request(req)


def test_session_size_and_wire_round_trip():
    req = session()
    assert 240_000 <= size(req) <= 360_000
    decoded = decode_request(req)
    assert decoded.messages[-1].role == "user"
    assert to_builtins(decoded) == req


def test_read_results_carry_the_file_reminder(prefixes):
    req = decode_request(prefixes[-1])
    blocks = [b for m in req.messages for b in message_blocks(m)]
    reads = {b.id for b in blocks if isinstance(b, ToolUseBlock) and b.name == "Read"}
    results = [b for b in blocks if isinstance(b, ToolResultBlock) and b.tool_use_id in reads]
    assert results and any(isinstance(b.content, list) for b in results)
    for block in results:
        if not block.is_error:
            assert block_text(block).rstrip().endswith("</system-reminder>")
            assert 2_000 <= len(block_text(block)) <= 12_000


def test_nonce_can_vary_per_request():
    reqs = session_prefixes(3, nonce=lambda k: f"n{k}")
    assert [r["system"][0]["text"].rsplit("cch=", 1)[1] for r in reqs] == ["n0", "n1", "n2", "n3"]
    assert [r["messages"] for r in reqs] == [r["messages"] for r in session_prefixes(3)]


def test_tool_uses_pair_with_results(prefixes):
    req = decode_request(prefixes[-1])
    pending: set[str] = set()
    errors = 0
    for message in req.messages:
        for block in message_blocks(message):
            if isinstance(block, ToolUseBlock):
                assert message.role == "assistant" and block.id.startswith("toolu_01")
                pending.add(block.id)
            elif isinstance(block, ToolResultBlock):
                pending.remove(block.tool_use_id)
                errors += bool(block.is_error)
        if message.role == "user":
            assert not pending
    assert errors >= 1


def test_cache_marker_only_on_newest_user_block(prefixes):
    for req in prefixes:
        marked = [
            (n, k)
            for n, m in enumerate(req["messages"])
            for k, b in enumerate(m["content"])
            if "cache_control" in b
        ]
        newest = max(n for n, m in enumerate(req["messages"]) if m["role"] == "user")
        assert marked == [(newest, len(req["messages"][newest]["content"]) - 1)]


def test_prefixes_grow_by_appending(prefixes):
    assert prefixes[0] == first_request(SESSION_PROMPT)
    for shorter, longer in zip(prefixes, prefixes[1:]):
        a, b = strip_cache_control(shorter), strip_cache_control(longer)
        assert len(b["messages"]) == len(a["messages"]) + 2
        assert b["messages"][: len(a["messages"])] == a["messages"]
        assert {**a, "messages": None} == {**b, "messages": None}
    assert prefixes[-1] == session(12)


def test_later_reminders_appear():
    text = json.dumps(session())
    for opening in (
        "This is a reminder that your todo list is currently empty.",
        "The task tools haven't been used recently.",
        "was modified, either by the user or by a linter.",
        "# memory\\nContents of /home/dev/.claude/projects/shop/memory/MEMORY.md",
        "UserPromptSubmit hook",
        "Whenever you read a file, you should consider whether it would be considered malware.",
    ):
        assert opening in text


def test_deterministic():
    assert json.dumps(session(20, nonce="7")) == json.dumps(session(20, nonce="7"))
    assert json.dumps(first_request("x")) == json.dumps(first_request("x"))
    assert first_request(nonce="1") != first_request(nonce="2")


def test_example_file_is_current():
    assert json.loads(EXAMPLE_PATH.read_text(encoding="utf-8")) == first_request(EXAMPLE_PROMPT)
