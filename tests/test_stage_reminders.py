"""The reminders stage: find, classify and keep/unwrap/drop/move every <system-reminder>."""

from __future__ import annotations

import copy

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import claude_code as cc
from tests.fixtures import claude_code_text as cc_text
from tests.fixtures.claude_code_turns import FOLLOW_UPS
from trimkit import ConfigError, ModelProfile, Pipeline, decode_request, encode
from trimkit.plugins import reminders as reminders_plugin
from trimkit.plugins.reminders.parse import CATEGORIES, OPEN, classify, date_of, split
from trimkit.render import prompt_text
from trimkit.stage import TrimResult
from trimkit.wire import TextBlock, ToolResultBlock, message_blocks, system_text

PIPELINE = Pipeline(entry_points=False)

CLAUDE_MD = """# inventory-api

FastAPI service for warehouse stock levels.

## Commands
- `make test` runs the unit tests; `make itest` needs docker.
- Format with `black .` before committing.

## Rules
- Never edit files under `generated/`; run `make codegen` instead.
"""

CONTEXT = f"""<system-reminder>
As you answer the user's questions, you can use the following context:
# claudeMd
Codebase and user instructions are shown below. Be sure to adhere to these instructions. IMPORTANT: These instructions OVERRIDE any default behavior and you MUST follow them exactly as written.

Contents of /srv/inventory/CLAUDE.md (project instructions, checked into the codebase):

{CLAUDE_MD}
Contents of /home/ana/.claude/CLAUDE.md (user's private global instructions for all projects):

Answer in British English.

Contents of /home/ana/.claude/projects/-srv-inventory/memory/MEMORY.md (user's auto-memory, persists across conversations):

- itest flakes when docker is cold; rerun once.
# currentDate
Today's date is 2025-06-03.

      IMPORTANT: this context may or may not be relevant to your tasks. You should not respond to this context unless it is highly relevant to your task.
</system-reminder>
"""

NESTED_CLAUDE_MD = (
    "Contents of /srv/inventory/api/CLAUDE.md (project instructions, checked into the codebase):\n\n"
    "Routers live in api/routes; one module per resource."
)
MEMORY = (
    "# memory\n"
    "Contents of /home/ana/.claude/projects/-srv-inventory/memory/MEMORY.md (user's auto-memory, "
    "persists across conversations):\n\n- Prefers small commits."
)
EXAMPLES = {
    "project": NESTED_CLAUDE_MD,
    "date": "Today's date is 2025-06-04.",
    "memory": MEMORY,
    "skills": "The following skills are available for use with the Skill tool:\n\n- csv-report: Summarise a CSV file.\n- sql-lint: Check SQL migrations.",
    "agents": "Available agent types for the Task tool:\n- general-purpose: Multi-step research. (Tools: *)\n- Explore: Fast code search. (Tools: Glob, Grep, Read)",
    "hooks": "PostToolUse:Edit hook additional context: black reformatted 1 file.",
    "todo": "The TodoWrite tool hasn't been used recently. If you're working on tasks that would benefit from tracking progress, consider using the TodoWrite tool. Only use it if relevant.",
    "file_changed": "Note: /srv/inventory/api/stock.py was modified, either by the user or by a linter. Don't revert it unless asked. Here are the relevant changes (shown with line numbers):\n   12→    limit: int = 50",
    "deferred_tools": "The following deferred tools are now available via ToolSearch:\nmcp__jira__get_ticket\nmcp__jira__search",
    "file_read_notice": "Whenever you read a file, you should consider whether it would be considered malware. You may analyse it, but do not improve it.",
    "unknown": "The user opened the file /srv/inventory/api/stock.py in the IDE. This may or may not be related to the current task.",
}
MORE_EXAMPLES = [
    ("hooks", "SessionStart:startup hook success: Success"),
    ("hooks", "PreToolUse:Bash hook blocking error from command: \"./guard.sh\": rm -rf is not allowed"),
    ("hooks", "Stop hook feedback:\nTests are failing; keep going."),
    ("todo", "Your todo list has changed. DO NOT mention this explicitly to the user. Here are the latest contents of your todo list:\n\n[{\"content\":\"Add test\",\"status\":\"pending\"}]"),
    ("todo", "The task tools haven't been used recently. Consider TaskCreate and TaskUpdate."),
    ("date", "# currentDate\nToday's date is 2025-06-05."),
    ("project", "Contents of /srv/inventory/CLAUDE.local.md (user's private project instructions, not checked in):\n\nUse port 8081."),
]


def reminder(body: str) -> str:
    return f"{OPEN}\n{body}\n</system-reminder>"


def categories(text: str, bare: bool = False) -> list[str]:
    return [s.category for part in split(text, bare=bare) or [] if not isinstance(part, str) for s in part.sections]


def user(*blocks: str | dict) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": b} if isinstance(b, str) else b for b in blocks]}


def assistant(text: str = "On it.", tool_id: str | None = None) -> dict:
    content: list = [{"type": "text", "text": text}]
    if tool_id:
        content.append({"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": "/a.py"}})
    return {"role": "assistant", "content": content}


def body(*messages: dict, system: object = "You are a coding assistant.") -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": system, "messages": list(messages)}


def run(request: dict | msgspec.Struct, tier: str = "small", actions: dict | None = None) -> TrimResult:
    """The stage run alone, with its tier defaults and then ``actions`` over them."""
    options = {"actions": actions} if actions else None
    return PIPELINE.run_stage("reminders", request, ModelProfile.for_tier(tier), options=options)


def texts(state: TrimResult, index: int) -> list[str]:
    return [b.text for b in message_blocks(state.request.messages[index]) if isinstance(b, TextBlock)]


# --------------------------------------------------------------------------- finding and classifying


@pytest.mark.parametrize("category", sorted(EXAMPLES))
def test_each_category_is_recognised(category):
    assert categories(reminder(EXAMPLES[category])) == [category]


@pytest.mark.parametrize("category, text", MORE_EXAMPLES)
def test_variants_are_recognised(category, text):
    assert categories(reminder(text)) == [category]


def test_the_context_reminder_is_split_into_its_sections():
    parts = split(CONTEXT)
    sections = parts[0].sections
    assert [s.category for s in sections] == ["project", "project", "memory", "date"]
    assert "".join(s.raw for s in sections) == CONTEXT[len(OPEN) : CONTEXT.index("</system-reminder>")]
    project, global_md, memory, date = (s.clean for s in sections)
    assert project.startswith("Contents of /srv/inventory/CLAUDE.md") and "make codegen" in project
    assert global_md.endswith("Answer in British English.")
    assert "rerun once" in memory
    assert date_of(date) == "2025-06-03"
    for clean in (project, date):
        assert "As you answer" not in clean and "may or may not be relevant" not in clean
        assert "OVERRIDE any default behavior" not in clean and "# claudeMd" not in clean


def test_a_memory_heading_inside_claude_md_stays_project():
    md = "# tools\n\n# memory\nKeep allocations low in the hot loop; the profiler lives in bench/."
    text = CONTEXT.replace(CLAUDE_MD, md)
    assert categories(text)[0] == "project"
    assert "Keep allocations low" in split(text)[0].sections[0].clean


def test_a_tag_in_the_middle_of_a_line_is_not_a_reminder():
    source = '    12→OPEN = "<system-reminder>"\n    13→CLOSE = "</system-reminder>"'
    assert split(source) is None
    assert [type(p).__name__ for p in split("a\n" + reminder("x") + " tail")] == ["str", "Reminder", "str"]


def test_several_reminders_and_text_in_one_block():
    text = f"before\n{reminder(EXAMPLES['todo'])}\nmiddle\n{reminder(EXAMPLES['hooks'])}\nafter"
    assert categories(text) == ["todo", "hooks"]
    assert run(body(user(text))).request.messages[0].content[0].text == (
        "before\n\nmiddle\n\nPostToolUse:Edit hook additional context: black reformatted 1 file.\n\nafter"
    )


def test_classification_reads_only_the_head_of_a_long_reminder():
    long_listing = EXAMPLES["skills"] + "\n" + "- filler: mentions CLAUDE.md and todo list\n" * 2000
    assert classify(long_listing) == "skills"


# --------------------------------------------------------------------------- actions


def test_keep_leaves_the_message_untouched():
    request = decode_request(body(user(CONTEXT, "what does stock.py do?")))
    state = run(request, "large", {c: "keep" for c in CATEGORIES})
    assert state.request is request and state.report.removed == {}


def test_unwrap_keeps_the_text_without_tags_or_boilerplate():
    state = run(body(user(CONTEXT, "hi")), actions={"project": "unwrap", "date": "unwrap", "memory": "unwrap"})
    merged = texts(state, 0)[0]
    assert OPEN not in merged and "As you answer" not in merged and "may or may not be relevant" not in merged
    assert merged.startswith("# Project instructions (/srv/inventory/CLAUDE.md)\n\n# inventory")
    assert "make codegen" in merged and "British English" in merged and "rerun once" in merged
    assert merged.endswith("Today's date: 2025-06-03.")
    assert texts(state, 0)[1] == "hi"
    assert system_text(state.request) == "You are a coding assistant."


@pytest.mark.parametrize(
    "clean, heading, text",
    [
        (NESTED_CLAUDE_MD, "# Project instructions (/srv/inventory/api/CLAUDE.md)", "Routers live in api/routes; one module per resource."),
        ("Contents of /srv/a (b)/CLAUDE.md (project instructions, checked into the codebase):\n\nX.", "# Project instructions (/srv/a (b)/CLAUDE.md)", "X."),
        ("Contents of /srv/app/CLAUDE.local.md (user's private project instructions, not checked in):\n\nUse port 8081.",
         "# User's private project instructions, not checked in (/srv/app/CLAUDE.local.md)", "Use port 8081."),
        ("Contents of /srv/app/CLAUDE.md:\n\nUse port 8081.", "# Project instructions (/srv/app/CLAUDE.md)", "Use port 8081."),
        ("Use port 8081.\nContents of nothing", "# Project instructions (CLAUDE.md)", "Use port 8081.\nContents of nothing"),
    ],
)
def test_an_instructions_file_goes_under_a_heading_that_names_it(clean, heading, text):
    assert reminders_plugin.project_heading(clean) == (heading, text)


def test_instructions_without_a_file_line_share_one_heading():
    rendered = reminders_plugin.render("project", ["One.", "Two.", NESTED_CLAUDE_MD], moved=True)
    assert rendered == (
        "# Project instructions (CLAUDE.md)\n\nOne.\n\nTwo.\n\n"
        "# Project instructions (/srv/inventory/api/CLAUDE.md)\n\nRouters live in api/routes; one module per resource."
    )


def test_drop_removes_and_records_chars():
    text = reminder(EXAMPLES["skills"])
    state = run(body(user(text, "hello")))
    assert texts(state, 0) == ["hello"]
    assert state.report.removed == {"skills": len(text)}


def test_move_puts_first_turn_context_into_the_system_prompt_in_a_fixed_order():
    state = run(body(user(CONTEXT, "what does stock.py do?")), tier="small")
    blocks = state.request.system
    assert [b.text.split("\n", 1)[0] for b in blocks] == [
        "You are a coding assistant.",
        "# Project instructions (/srv/inventory/CLAUDE.md)",
        "Today's date: 2025-06-03.",
    ]
    assert blocks[1].text == (
        f"# Project instructions (/srv/inventory/CLAUDE.md)\n\n{CLAUDE_MD.strip()}\n\n"
        "# User's private global instructions for all projects (/home/ana/.claude/CLAUDE.md)\n\n"
        "Answer in British English."
    )
    assert "rerun once" not in encode(state.request).decode()  # memory: drop on small
    assert texts(state, 0) == ["what does stock.py do?"]


def test_medium_unwraps_memory_in_place():
    state = run(body(user(CONTEXT, "q")), tier="medium")
    assert texts(state, 0)[0].startswith("# Memory\n\nContents of /home/ana/.claude/projects")
    assert "# Project instructions" in system_text(state.request)


def test_large_keeps_context_and_drops_nudges():
    state = run(body(user(CONTEXT, reminder(EXAMPLES["todo"]), "q")), tier="large")
    assert texts(state, 0) == [CONTEXT, "q"]
    assert state.report.removed == {"todo": len(reminder(EXAMPLES["todo"]))}


def test_keep_and_drop_in_one_reminder_rewraps_the_kept_sections():
    state = run(body(user(CONTEXT, "q")), actions={"project": "keep", "memory": "drop", "date": "drop"})
    kept = texts(state, 0)[0]
    assert kept.startswith(OPEN) and kept.endswith("</system-reminder>")
    assert "make codegen" in kept and "rerun once" not in kept and "2025-06-03" not in kept


def test_move_only_from_the_first_user_message():
    later = reminder(NESTED_CLAUDE_MD)
    request = body(
        user("start"),
        assistant(tool_id="t1"),
        user({"type": "tool_result", "tool_use_id": "t1", "content": "print(1)"}, later),
    )
    state = run(request, tier="small")
    assert system_text(state.request) == "You are a coding assistant."
    assert texts(state, 2) == [
        "# Project instructions (/srv/inventory/api/CLAUDE.md)\n\nRouters live in api/routes; one module per resource."
    ]


def test_a_second_user_message_before_the_first_answer_is_not_moved():
    state = run(body(user("first"), user(reminder(EXAMPLES["date"]))), tier="small")
    assert system_text(state.request) == "You are a coding assistant."
    assert texts(state, 1) == ["Today's date: 2025-06-04."]


def test_system_messages_move_only_before_the_first_assistant_turn():
    early = {"role": "system", "content": "Today's date is 2025-06-04."}
    late = {"role": "system", "content": "Today's date is 2025-06-05."}
    state = run(body(user("q"), early, assistant(), late, user("more")), tier="small")
    assert system_text(state.request).endswith("Today's date: 2025-06-04.")
    assert [m.role for m in state.request.messages] == ["user", "assistant", "system", "user"]
    assert state.request.messages[2].content == "Today's date: 2025-06-05."


def test_a_system_message_left_with_nothing_is_removed_not_marked():
    """An emptied ``role: "system"`` message used to become "(no content)" in the user's turn."""
    listing = {"role": "system", "content": [{"type": "text", "text": EXAMPLES["agents"]}]}
    later = {"role": "system", "content": EXAMPLES["todo"]}
    state = run(body(user("say hi"), listing, assistant(), later, user("more")), tier="small")
    assert [m.role for m in state.request.messages] == ["user", "assistant", "user"]
    assert "(no content)" not in prompt_text(state.request)


def test_moved_text_is_appended_to_block_and_empty_system_prompts():
    for system in (None, [{"type": "text", "text": "A."}, {"type": "text", "text": "B."}]):
        state = run(body(user(reminder(EXAMPLES["date"]), "q"), system=system))
        assert [b.text for b in state.request.system][-1] == "Today's date: 2025-06-04."
        assert len(state.request.system) == (1 if system is None else 3)


# --------------------------------------------------------------------------- where reminders hide


def test_reminders_inside_tool_results_string_and_list():
    notice = reminder(EXAMPLES["file_read_notice"])
    request = body(
        user("q"),
        assistant(tool_id="t1"),
        user(
            {"type": "tool_result", "tool_use_id": "t1", "content": f"     1→import os\n\n{notice}\n"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": f"x = 1\n{notice}"}, {"type": "text", "text": notice}]},
            {"type": "tool_result", "tool_use_id": "t3", "content": notice},
            {"type": "tool_result", "tool_use_id": "t4", "content": [{"type": "text", "text": notice}]},
        ),
    )
    results = run(request).request.messages[2].content
    assert results[0].content == "1→import os".rjust(len("     1→import os"))
    assert results[1].content == [TextBlock(text="x = 1")]
    assert results[2] == ToolResultBlock(tool_use_id="t3", content="")
    assert results[3] == ToolResultBlock(tool_use_id="t4", content="")


def test_a_user_message_emptied_of_reminders_holds_no_content_marker():
    state = run(body(user("q"), assistant(), user(reminder(EXAMPLES["todo"]))))
    assert state.request.messages[2].content == [TextBlock(text="(no content)")]
    string_content = {"role": "user", "content": reminder(EXAMPLES["todo"])}
    assert run(body(user("q"), assistant(), string_content)).request.messages[2].content == "(no content)"


def test_system_message_text_outside_tags_is_a_reminder_too():
    system_message = {
        "role": "system",
        "content": [
            {"type": "text", "text": EXAMPLES["skills"]},
            {"type": "text", "text": reminder(EXAMPLES["agents"]) + "\n" + EXAMPLES["hooks"]},
        ],
    }
    state = run(body(user("q"), system_message))
    assert len(state.request.messages) == 1
    assert system_text(state.request).endswith("PostToolUse:Edit hook additional context: black reformatted 1 file.")
    assert set(state.report.removed) == {"skills", "agents", "hooks"}
    state = run(body(user("q"), assistant(), system_message, user("more")))
    assert texts(state, 2) == ["PostToolUse:Edit hook additional context: black reformatted 1 file."]


def test_assistant_text_is_never_touched():
    request = body(user("q"), {"role": "assistant", "content": [{"type": "text", "text": reminder(EXAMPLES["todo"])}]})
    assert encode(run(request).request.messages[1]) == encode(decode_request(request).messages[1])


# --------------------------------------------------------------------------- configuration


def test_project_instructions_cannot_be_dropped():
    with pytest.raises(ConfigError, match="project"):
        run(body(user("q")), actions={"project": "drop"})
    with pytest.raises(ConfigError) as error:
        Pipeline({"reminders": {"small": {"actions": {"project": "drop"}}}}, entry_points=False)
    assert str(error.value).startswith("stages.reminders.small.actions.project: cannot be 'drop'")


@pytest.mark.parametrize(
    "actions, message",
    [
        ({"weather": "drop"}, "stages.reminders.actions.weather: unknown option"),
        ({"todo": "shred"}, "stages.reminders.actions.todo: invalid enum value 'shred'"),
    ],
)
def test_unknown_categories_and_actions_are_config_errors_naming_the_key(actions, message):
    with pytest.raises(ConfigError) as error:
        Pipeline({"reminders": {"actions": actions}}, entry_points=False)
    assert str(error.value) == message


def test_tier_defaults_cover_every_category_and_never_drop_project():
    assert reminders_plugin.Actions.__struct_fields__ == CATEGORIES
    for tier in ("small", "medium", "large"):
        assert PIPELINE.options_for("reminders", tier).actions.project != "drop"
    assert {s.name: s.order for s in PIPELINE.stages}["reminders"] == 300


def test_config_overrides_one_category_over_the_tier_defaults():
    state = run(body(user(CONTEXT, "q")), tier="small", actions={"memory": "move"})
    assert [b.text.split("\n", 1)[0] for b in state.request.system][1:] == [
        "# Project instructions (/srv/inventory/CLAUDE.md)",
        "# Memory",
        "Today's date: 2025-06-03.",
    ]


# --------------------------------------------------------------------------- fixtures of Claude Code's shape


def test_first_request_small_tier():
    state = run(cc.first_request("what is 2+2"), tier="small")
    system = system_text(state.request)
    assert "# Project instructions (/home/dev/shop/CLAUDE.md)\n\n# shop\n" in system and "ROUND_HALF_EVEN" in system
    assert "Contents of" not in system
    assert system.endswith(f"Today's date: {cc_text.TODAY}.")
    assert texts(state, 0) == ["what is 2+2"]
    assert texts(state, 1) == [cc_text.SESSION_START_HOOK]
    assert set(state.report.removed) >= {"skills", "agents", "deferred_tools"}


@pytest.mark.parametrize("tier", ["small", "medium"])
def test_fixture_session_has_no_reminder_left_on_small_and_medium(tier):
    original = cc.session(turns=40)
    state = run(original, tier=tier)
    out = encode(state.request.messages).decode()
    assert OPEN not in out and "would be considered malware" not in out and "TodoWrite tool" not in out
    assert len(state.request.messages) == len(original["messages"])
    users_words = [
        block["text"]
        for message in original["messages"]
        if message["role"] == "user"
        for block in message["content"]
        if block["type"] == "text" and OPEN not in block["text"]
    ]
    assert cc.SESSION_PROMPT in users_words and sum(w in FOLLOW_UPS for w in users_words) >= 3
    assert all(words in out for words in users_words)
    assert ("prefers pytest parametrize" in out) == (tier == "medium")


def test_fixture_session_prefix_stability():
    trimmed = [run(request, tier="small").request for request in cc.session_prefixes(turns=12)]
    for shorter, longer in zip(trimmed, trimmed[1:]):
        assert encode(longer.system) == encode(shorter.system)
        n = len(shorter.messages)
        assert encode(cc.strip_cache_control(msg_dicts(longer)[:n])) == encode(cc.strip_cache_control(msg_dicts(shorter)))


def msg_dicts(request) -> list:
    return msgspec.json.decode(encode(request.messages))


def test_the_request_handed_in_is_not_modified():
    raw = cc.session(turns=10)
    snapshot = copy.deepcopy(raw)
    request = decode_request(raw)
    before = encode(request)
    state = run(request, "small")
    assert state.request is not request
    assert encode(request) == before and raw == snapshot


# --------------------------------------------------------------------------- properties

SNIPPETS = list(EXAMPLES.values()) + [text for _, text in MORE_EXAMPLES]
plain = st.text(st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=40)
piece = st.one_of(plain, st.sampled_from(SNIPPETS).map(reminder), st.just(CONTEXT))


@st.composite
def text_with_reminders(draw) -> str:
    text = "\n".join(draw(st.lists(piece, min_size=1, max_size=4)))
    return text if text.strip() else "ok"  # the API rejects blank text blocks


@st.composite
def tool_result(draw, tool_id: str) -> dict:
    content = draw(st.one_of(text_with_reminders(), st.lists(text_with_reminders().map(lambda t: {"type": "text", "text": t}), max_size=3)))
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content}


@st.composite
def conversation(draw) -> tuple[list[dict], list[dict]]:
    """(first part ending with a user turn, later turns starting with an assistant turn)."""
    first = [user(*draw(st.lists(text_with_reminders(), min_size=1, max_size=3)))]
    if draw(st.booleans()):
        first.append({"role": "system", "content": draw(text_with_reminders())})
    later = []
    for n in range(draw(st.integers(0, 3))):
        later.append(assistant(tool_id=f"t{n}"))
        blocks = [draw(tool_result(f"t{n}"))] + draw(st.lists(text_with_reminders(), max_size=2))
        later.append(user(*blocks))
    return first, later


non_keep = st.fixed_dictionaries(
    {c: st.sampled_from(["unwrap", "move"] if c == "project" else ["unwrap", "drop", "move"]) for c in CATEGORIES}
)


@given(conversation(), non_keep, st.sampled_from(["small", "medium", "large"]))
def test_property_deterministic_and_no_tags_left(parts, actions, tier):
    first, later = parts
    request = body(*first, *later)
    once = encode(run(request, tier, actions).request)
    assert once == encode(run(copy.deepcopy(request), tier, actions).request)
    assert OPEN.encode() not in once


@given(conversation(), st.sampled_from(["small", "medium", "large"]))
def test_property_prefix_stable_when_turns_are_added(parts, tier):
    first, later = parts
    short = run(body(*first), tier).request
    long = run(body(*first, *later), tier).request
    assert encode(long.system) == encode(short.system)
    assert encode(long.messages[: len(short.messages)]) == encode(short.messages)
    for message in long.messages:
        assert message.content and all(
            not isinstance(b, TextBlock) or b.text.strip() for b in message_blocks(message)
        )


def test_a_system_message_paragraph_made_of_the_agents_known_lines_is_its_guidance():
    """Lines the catalogue knows (here: the committed example's own guidance) are the agent's, dropped
    on small tiers; a paragraph it does not know is kept."""
    known = cc_text.SECTIONS.split("\n\n")[1].split("\n", 1)[1]
    message = {"role": "system", "content": f"{known}\n\nFiles under /srv are read-only."}
    assert categories(message["content"], bare=True) == ["guidance", "unknown"]
    state = run(body(user("q"), message), tier="small")
    assert known not in system_text(state.request) and "Files under /srv are read-only." in system_text(state.request)


FILE_TEXT = "\n".join(f"{n}\tline {n} of the cart module" for n in range(1, 400))


def test_files_claude_code_puts_back_after_a_compaction_become_their_names_on_small_tiers():
    """After a compaction Claude Code re-attaches the files read last, whole: as a system
    message (2.1.197) or as pairs of reminders (2.1.332). Whole, they refilled a small window
    at once and the next request was another compaction."""
    path = "/home/ada/shop/src/cart.py"
    called = f'Called the Read tool with the following input: {{"file_path":"{path}"}}'
    as_system = {"role": "system", "content": f"\n{called}\nResult of calling the Read tool:\n{FILE_TEXT}\n\n"
                                              f"{EXAMPLES['agents']}"}
    as_reminders = user({"type": "tool_result", "tool_use_id": "t1", "content": "ok"}, reminder(called),
                        reminder(f"Result of calling the Read tool:\n{FILE_TEXT}"))
    note = f"Read before the conversation was summarised: {path} (read again if you need it)."
    for request in (body(user("go on"), assistant(tool_id="t1"), user({"type": "tool_result", "tool_use_id": "t1",
                                                                        "content": "ok"}), as_system),
                    body(user("go on"), assistant(tool_id="t1"), as_reminders)):
        for tier in ("small", "medium"):
            text = prompt_text(run(request, tier=tier).request)
            assert note in text and "line 200 of the cart module" not in text
        assert "line 200 of the cart module" in prompt_text(run(request, tier="large").request)
