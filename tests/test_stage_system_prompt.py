"""The system_prompt stage: recognition by structure, compact prompts per tier, kept facts."""

from __future__ import annotations


import jinja2
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import claude_code as cc
from tests.fixtures import claude_code_text as cc_text
from trimkit import ConfigError, ModelProfile, Pipeline, decode_request, encode
from trimkit.plugins import system_prompt as system_prompt_plugin
from trimkit.plugins.system_prompt.recognition import MIN_SIGNALS, Environment, GitSnapshot, recognize, signals
from trimkit.templates import render_template
from trimkit.wire import TextBlock

IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."

MAIN_SECTIONS = {
    "intro": (
        "You are an interactive CLI tool that helps users with software engineering tasks. "
        "Use the instructions below and the tools available to you to assist the user.\n\n"
        "IMPORTANT: Refuse to write code that may be used maliciously.\n"
        "IMPORTANT: Never guess URLs for the user unless they clearly help with programming."
    ),
    "tone": (
        "# Tone and style\n"
        "Keep answers short and direct. Your output is shown in a terminal, so use GitHub-flavored "
        "markdown sparingly. Do not add an introduction or a conclusion unless asked. "
        "Only use emojis when the user asks for them.\n"
        "<example>\nuser: 2 + 2\nassistant: 4\n</example>"
    ),
    "proactive": (
        "# Proactiveness\n"
        "Do what was asked, and only that. Do not surprise the user with actions they did not request."
    ),
    "conventions": (
        "# Following conventions\n"
        "Before changing a file, understand its conventions. Never assume a library is available; "
        "check the manifest first. Look at neighbouring components before writing a new one."
    ),
    "tasks": (
        "# Doing tasks\n"
        "The user mostly asks you to fix bugs, add features, refactor or explain code.\n"
        "- Use the TodoWrite tool to plan the task when it has several steps\n"
        "- Search the codebase to understand it before you change it\n"
        "- Verify the solution with the project's tests; never assume a test framework\n"
        "- Run the lint and typecheck commands when you are done"
    ),
    "tools": (
        "# Tool usage policy\n"
        "- When searching for files, prefer the Task tool to reduce context usage.\n"
        "- Use the WebFetch tool for pages the user links to.\n"
        "- Batch independent calls: when you need to run git status and git diff, call the Bash tool "
        "twice in one message.\n"
        "- Prefer the Read tool over cat and the Grep tool over grep."
    ),
}
ORDER = ("intro", "tone", "proactive", "conventions", "tasks", "tools")


def env_section(
    cwd: str = "/home/dev/shop",
    platform: str = "linux",
    shell: str = "bash",
    os_version: str = "Linux 6.8.0-45-generic",
    date: str | None = None,
    extra_dirs: str | None = None,
) -> str:
    lines = [f"Working directory: {cwd}"]
    if extra_dirs:
        lines.append(f"Additional working directories: {extra_dirs}")
    lines += ["Is directory a git repo: Yes", f"Platform: {platform}", f"Shell: {shell}"]
    lines.append(f"OS Version: {os_version}")
    if date:
        lines.append(f"Today's date: {date}")
    return (
        "Here is useful information about the environment you are running in:\n<env>\n"
        + "\n".join(lines)
        + "\n</env>\nYou are powered by the model named Opus 4.1. The exact model ID is "
        "claude-opus-4-1-20250805.\n\nAssistant knowledge cutoff is January 2025."
    )


STATUS = ["M src/shop/cart.py", "M tests/test_cart.py", "?? notes/todo.md"]
COMMITS = ["3f2a9c1 Fix rounding in cart totals", "b81d0e4 Add coupon codes", "0c9e7aa Initial import"]


def git_section(branch: str = "main", main: str = "main", status=STATUS, commits=COMMITS) -> str:
    return (
        "gitStatus: This is the git status at the start of the conversation. Note that this status "
        "is a snapshot in time, and will not update during the conversation.\n"
        f"Current branch: {branch}\n\nMain branch (you will usually use this for PRs): {main}\n\n"
        "Status:\n" + ("\n".join(status) or "(clean)") + "\n\nRecent commits:\n" + "\n".join(commits)
    )


def claude_code_system(order=ORDER, sections=MAIN_SECTIONS, **env) -> list[dict]:
    git = {k: env.pop(k) for k in ("branch", "status", "commits") if k in env}
    main = "\n\n".join(sections[name] for name in order) + "\n\n" + env_section(**env)
    return [
        {"type": "text", "text": IDENTITY},
        {"type": "text", "text": main},
        {"type": "text", "text": git_section(**git)},
    ]


REWORDED = {
    "intro": (
        "You are a command line tool for programmers. You work through the tools you are given "
        "to get software engineering work done for the person at the keyboard."
    ),
    "tone": "## Style of your replies\nBe brief. Skip pleasantries and summaries.",
    "proactive": "## Initiative\nDo the requested work and nothing more.",
    "conventions": "## Code conventions\nMimic the code that is already there.",
    "tasks": "## How to approach a task\nPlan with the TodoWrite tool, search, change, then test.",
    "tools": (
        "## Using tools\nFor wide searches use the Task tool; for shell work the Bash tool; "
        "read files with the Read tool."
    ),
}


def reworded_system() -> list[dict]:
    blocks = claude_code_system(
        order=("tools", "tasks", "intro", "conventions", "tone", "proactive"), sections=REWORDED
    )
    blocks[0]["text"] = "You are a coding assistant that runs inside a terminal."
    return blocks


SDK_PROMPTS = [
    "You are a helpful assistant that answers questions about cooking.",
    (
        "You are a helpful assistant that reviews pull requests.\n\n# Tone\nBe polite and specific.\n\n"
        "# Tools\nUse the Search tool to find code and the Calculator tool for arithmetic.\n"
        "Working directory: /srv/reviews"
    ),
    "# Role\nYou translate English to French.\n# Output\nOnly the translation.",
]


def request(system, messages=None) -> dict:
    return {
        "model": "claude-opus-4-1",
        "max_tokens": 64000,
        "system": system,
        "messages": messages or [{"role": "user", "content": "what is 2+2"}],
    }


KNOWN_TEXT = (IDENTITY, *MAIN_SECTIONS.values(), *REWORDED.values(), "You are a coding assistant that runs inside a terminal.")
"""The hand-made agent's own text: what a catalogue would know of a real agent's prompt."""
CONFIG = {"system_prompt": {"known_text": KNOWN_TEXT}}
PIPELINE = Pipeline(CONFIG, entry_points=False)


def trim(req, tier="small", options=None):
    """The stage run alone for ``tier``, with ``options`` over the tier's defaults."""
    return PIPELINE.run_stage("system_prompt", req, ModelProfile.for_tier(tier), options=options)


def system_of(result) -> str:
    system = result.request.system
    assert isinstance(system, list) and all(isinstance(b, TextBlock) for b in system)
    return "\n\n".join(b.text for b in system)


# --------------------------------------------------------------------------- recognition


def test_recognises_claude_code_prompt():
    agent = recognize("\n\n".join(b["text"] for b in claude_code_system()))
    assert agent is not None and agent.agent == "claude-code"
    assert agent.signals == {"environment", "sections", "git_status", "identity", "tool_policy", "model_line"}


def test_recognises_reworded_and_reordered_prompt():
    text = "\n\n".join(b["text"] for b in reworded_system())
    assert "Claude Code" not in text and "# Tone" not in text
    agent = recognize(text)
    assert agent is not None
    assert agent.environment.working_directory == "/home/dev/shop"


def test_recognises_prompt_without_git_snapshot():
    blocks = claude_code_system()[:2]
    agent = recognize("\n\n".join(b["text"] for b in blocks))
    assert agent is not None and agent.environment.git is None


@pytest.mark.parametrize("prompt", SDK_PROMPTS)
def test_sdk_prompts_are_not_recognised(prompt):
    assert len(signals(prompt)) < MIN_SIGNALS
    assert recognize(prompt) is None


def test_each_signal_alone_is_not_enough():
    env_only = env_section()
    assert signals(env_only) == {"environment", "model_line"}
    assert recognize(env_only) is None
    assert recognize(git_section()) is None
    assert recognize(MAIN_SECTIONS["tools"] + "\n\n" + MAIN_SECTIONS["tone"]) is None


# --------------------------------------------------------------------------- extraction


def test_extracts_environment_and_git_snapshot():
    text = "\n\n".join(
        b["text"] for b in claude_code_system(date="2025-08-19", extra_dirs="/home/dev/lib, /tmp/x")
    )
    env = recognize(text).environment
    assert env.working_directory == "/home/dev/shop"
    assert env.additional_directories == "/home/dev/lib, /tmp/x"
    assert env.is_git_repo == "Yes"
    assert (env.platform, env.shell, env.os_version) == ("linux", "bash", "Linux 6.8.0-45-generic")
    assert env.date == "2025-08-19"
    assert env.git == GitSnapshot(
        branch="main", main_branch="main", status=tuple(STATUS), recent_commits=tuple(COMMITS)
    )


def test_env_block_facts_win_over_prose_lines():
    blocks = claude_code_system()
    blocks[1]["text"] = "Shell: prefer the dedicated tools to it.\n\n" + blocks[1]["text"]
    env = recognize("\n\n".join(b["text"] for b in blocks)).environment
    assert env.shell == "bash"


def test_recent_commits_are_cut_to_the_newest():
    snapshot = GitSnapshot(status=("M a.py",), recent_commits=tuple(f"c{i} msg" for i in range(5)))
    cut = snapshot.truncated(30, max_recent_commits=3)
    assert cut.recent_commits == ("c0 msg", "c1 msg", "c2 msg") and cut.status == ("M a.py",)
    assert snapshot.truncated(30, max_recent_commits=5) is snapshot
    assert snapshot.truncated(30) is snapshot


def test_small_tier_keeps_three_recent_commits_and_medium_all():
    commits = [f"{i:07x} Commit {i}" for i in range(5)]
    req = request(claude_code_system(commits=commits))
    small = system_of(trim(req, "small"))
    assert "Recent commits:\n" + "\n".join(commits[:3]) in small and commits[3] not in small
    assert small.endswith(commits[2])
    assert "\n".join(commits) in system_of(trim(req, "medium"))
    assert commits[4] in system_of(trim(req, "small", {"max_recent_commits": 5}))


def test_compact_environment_section_reads_as_one_titled_block():
    text = system_of(trim(request(claude_code_system()), "small"))
    env = text[text.index("# Environment\n"):]
    assert env.startswith("# Environment\nWorking directory: /home/dev/shop\nIs directory a git repo: Yes\n")
    assert "\ngitStatus: " in env and "\nMain branch: main\n" in env and "<env>" not in env


def test_git_status_is_truncated_with_marker():
    snapshot = GitSnapshot(status=tuple(f"M f{i}.py" for i in range(45)))
    cut = snapshot.truncated(30)
    assert cut.status[:30] == snapshot.status[:30]
    assert cut.status[30] == "... (15 more status lines not shown)"
    assert len(cut.status) == 31
    assert snapshot.truncated(45) is snapshot


SAFE_TEXT = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters=":#"), min_size=1, max_size=30
)


@given(
    cwd=SAFE_TEXT.map(lambda s: "/home/" + s),
    shell=SAFE_TEXT,
    branch=SAFE_TEXT,
    status=st.lists(SAFE_TEXT.map(lambda s: "M " + s), max_size=40),
    commits=st.lists(SAFE_TEXT.map(lambda s: "abc1234 " + s), min_size=1, max_size=5),
)
def test_facts_survive_every_tier(cwd, shell, branch, status, commits):
    req = request(claude_code_system(cwd=cwd, shell=shell, branch=branch, status=status, commits=commits))
    for tier, kept_commits in (("small", 3), ("medium", 10), ("large", 10)):
        result = trim(req, tier)
        text = system_of(result)
        for fact in (f"Working directory: {cwd}", f"Shell: {shell}", f"Current branch: {branch}",
                     "Platform: linux", "OS Version: Linux 6.8.0-45-generic", *status[:30],
                     *commits[:kept_commits]):
            assert fact in text


# --------------------------------------------------------------------------- the stage


@pytest.mark.parametrize("tier,limit", [("small", 1200), ("medium", 2500)])
def test_compact_prompt_sizes(tier, limit):
    result = trim(request(claude_code_system()), tier)
    text = system_of(result)
    before_env = text.index("# Environment\n")
    assert before_env <= limit
    assert len(result.request.system) == 1
    assert "gitStatus" in text and "Recent commits:\n3f2a9c1 Fix rounding in cart totals" in text
    assert text.endswith("0c9e7aa Initial import")
    assert "powered by the model" not in text and "knowledge cutoff" not in text
    assert result.carry.recognized_agent == "claude-code"
    original = sum(len(b["text"]) for b in claude_code_system()) + 4
    assert result.report.stages[0].removed == {"system_prompt": original - len(text)}


def test_small_and_medium_differ_and_medium_covers_more():
    small = system_of(trim(request(claude_code_system()), "small"))
    medium = system_of(trim(request(claude_code_system()), "medium"))
    assert len(small) < len(medium)
    assert "file_path:line_number" in medium and "force-push" in medium


def test_large_keeps_the_original_system():
    req = decode_request(request(claude_code_system()))
    result = trim(req, "large")
    assert result.request.system == req.system
    assert result.carry.recognized_agent == "claude-code"
    assert "Working directory: /home/dev/shop" in system_of(result)
    assert result.report.stages[0].removed == {}


def test_long_status_is_truncated_in_compact_prompt_only():
    status = [f"M src/module_{i}.py" for i in range(50)]
    req = request(claude_code_system(status=status))
    small = system_of(trim(req, "small"))
    assert "M src/module_29.py" in small and "M src/module_30.py" not in small
    assert "... (20 more status lines not shown)" in small
    assert "M src/module_49.py" in system_of(trim(req, "large"))


@pytest.mark.parametrize("prompt", SDK_PROMPTS)
@pytest.mark.parametrize("tier", ["small", "medium", "large"])
def test_unrecognised_prompt_is_untouched(prompt, tier):
    for system in (prompt, [{"type": "text", "text": prompt}]):
        req = request(system)
        result = trim(req, tier)
        assert encode(result.request) == encode(decode_request(req))
        assert result.carry.recognized_agent is None


def test_no_system_prompt():
    req = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert trim(req).request.system is None


def test_recognised_string_system_becomes_blocks():
    text = "\n\n".join(b["text"] for b in claude_code_system())
    result = trim(request(text), "large")
    assert result.request.system == [TextBlock(text=text)]


def test_reworded_prompt_is_replaced():
    text = system_of(trim(request(reworded_system()), "small"))
    assert text.startswith("You are a coding agent working in the user's terminal.")
    assert "Working directory: /home/dev/shop" in text and "Current branch: main" in text


def test_input_request_is_not_modified():
    req = decode_request(request(claude_code_system()))
    before = encode(req)
    trim(req, "small")
    assert encode(req) == before


def test_deterministic_bytes():
    outputs = {encode(trim(request(claude_code_system()), tier).request) for tier in ["small"] * 3}
    assert len(outputs) == 1
    fresh = Pipeline(CONFIG, entry_points=False)
    assert encode(fresh.run_stage("system_prompt", request(claude_code_system()), ModelProfile.for_tier("small")).request) in outputs


# --------------------------------------------------------------------------- options


def test_mode_keep_and_replace():
    req = request(claude_code_system())
    kept = trim(req, "small", {"mode": "keep"})
    assert encode(kept.request) == encode(decode_request(req))
    assert kept.carry.recognized_agent == "claude-code"
    replaced = trim(req, "large", {"mode": "replace"})
    assert system_of(replaced) == system_of(trim(req, "medium"))


def test_template_override_and_max_lines():
    req = request(claude_code_system(status=[f"M f{i}" for i in range(10)]))
    result = trim(req, "medium", {"template": "small.j2", "max_git_status_lines": 2})
    text = system_of(result)
    assert text == system_of(trim(req, "small", {"max_git_status_lines": 2}))
    assert "M f1\n... (8 more status lines not shown)" in text


@pytest.mark.parametrize(
    "options",
    [{"mode": "shrink"}, {"max_git_status_lines": -1}, {"max_recent_commits": -1}, {"max_recent_commits": "3"},
     {"template": "nope.j2"}],
)
def test_bad_options_are_config_errors_naming_the_key_when_the_pipeline_is_built(options):
    with pytest.raises(ConfigError) as error:
        Pipeline({"system_prompt": options}, entry_points=False)
    assert str(error.value).startswith(f"stages.system_prompt.{next(iter(options))}: ")
    with pytest.raises(ConfigError):
        trim(request(claude_code_system()), "small", options)


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("name", ["small.j2", "medium.j2"])
def test_tier_templates_render_strictly(name):
    env_text = render_template("environment.j2", env=recognize(
        "\n\n".join(b["text"] for b in claude_code_system())
    ).environment, git=None)
    text = render_template(name, environment=env_text, env=None, git=None, agent="claude-code", kept="",
                           tools=system_prompt_plugin.OfferedTools())
    assert text.rstrip().endswith("\nOS Version: Linux 6.8.0-45-generic")
    with pytest.raises(jinja2.UndefinedError):
        render_template(name)


def test_environment_template_omits_unknown_facts():

    text = render_template("environment.j2", env=Environment(working_directory="/w"), git=None)
    assert "Working directory: /w" in text
    assert "Platform" not in text and "Shell" not in text and "gitStatus" not in text


def test_compact_prompt_is_a_fixed_point():
    for tier in ("small", "medium"):
        once = trim(request(claude_code_system()), tier)
        twice = trim(once.request, tier)
        assert encode(twice.request) == encode(once.request)


def test_tool_policy_signal_counts_named_tools_only():
    assert "tool_policy" in signals("Run it with the Bash tool, then the `Grep` tools.")
    assert "tool_policy" not in signals("The tool is ready. Each tool works. A toolbox: Bash toolkit.")


def test_the_same_prompt_is_recognised_once_per_process():
    trim(request(claude_code_system()), "small")
    body = msgspec.json.encode(request(claude_code_system()))
    # new request objects with equal but distinct strings, as each new turn decodes
    requests = [decode_request(body) for _ in range(200)]
    misses = system_prompt_plugin.prepare.cache_info().misses
    outputs = set()
    for req in requests:
        outputs.add(encode(trim(req, "small").request))
    assert system_prompt_plugin.prepare.cache_info().misses == misses
    assert len(outputs) == 1


# --------------------------------------------------------------------------- on the shared fixture

FIXTURE_FACTS = (
    "Working directory: /home/dev/shop",
    "Platform: linux",
    "Shell: bash",
    "OS Version: Linux 6.8.0-45-generic",
    "Is directory a git repo: Yes",
    "Current branch: main",
    "M src/shop/cart.py",
    "?? notes.txt",
    "4f2a9c1 Round line totals before summing the cart",
)


def test_fixture_is_recognised_by_every_signal():
    text = "\n\n".join(b["text"] for b in cc.system_blocks())
    agent = recognize(text)
    assert agent is not None
    assert agent.signals == {"environment", "sections", "git_status", "identity", "tool_policy", "model_line",
                             "known_lines"}


def test_reworded_fixture_is_recognised():
    headings = {"# Tone and style": "## How to write replies", "# Doing tasks": "## Approach to work",
                "# Tool usage policy": "## Working with tools", "# Task Management": "## Tracking todos"}
    sections = cc_text.SECTIONS
    for old, new in headings.items():
        sections = sections.replace(old, new)
    sections = "\n\n## ".join(reversed(sections.split("\n\n## ")))
    main = cc.main_prompt().replace(cc_text.SECTIONS, sections).replace(cc_text.INTRO, "A terminal helper.")
    main = main.replace("Claude Code", "the helper").replace("claude-code", "helper")
    assert "Claude Code" not in main and "# Tone" not in main
    agent = recognize(main)
    assert agent is not None and agent.environment.git.branch == "main"


@pytest.mark.parametrize("tier,limit", [("small", 1200), ("medium", 2500)])
def test_fixture_compact_prompt(tier, limit):
    result = trim(cc.first_request(), tier)
    text = system_of(result)
    assert text.index("# Environment\n") <= limit
    for fact in FIXTURE_FACTS:
        assert fact in text
    assert "x-anthropic-billing-header" not in text and cc_text.MODEL not in text
    assert len(text) < 0.5 * sum(len(b["text"]) for b in cc.system_blocks())


def test_fixture_large_keeps_original():
    req = decode_request(cc.first_request())
    result = trim(req, "large")
    assert result.request.system == req.system
    assert all(fact in system_of(result) for fact in FIXTURE_FACTS)


def test_fixture_session_system_is_the_same_every_turn():
    systems = {encode(trim(req, "small").request.system) for req in cc.session_prefixes(turns=6)}
    assert len(systems) == 1
