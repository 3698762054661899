"""The reminders stage: keep, unwrap, drop or move each ``<system-reminder>`` by category.

Reminders are found in user text blocks, inside ``tool_result`` content, and in
``role: "system"`` messages (whose untagged text counts as a reminder too); see
:mod:`trimkit.plugins.reminders.parse` for how they are parsed and classified. The option
``actions`` (:class:`Actions`) gives each category an action:

``keep``
    leave the reminder as it is, tags included;
``unwrap``
    keep the content, drop the tags and Claude Code's boilerplate sentences;
``drop``
    remove it;
``move``
    put the content into the system prompt (appended as new text blocks, one per
    category, in a fixed order with a short heading; project instructions go under
    one heading per file that names it, in place of Claude Code's ``Contents of``
    line). Only reminders in the first
    user message, or in a ``role: "system"`` message before the first assistant
    turn, are moved; anywhere else ``move`` acts as ``unwrap``. Changing the system
    prompt on a later turn would change the start of the prompt and throw away
    every cached turn, and a message's fate must not depend on messages after it.
    In a ``role: "system"`` message before the first assistant turn, ``unwrap`` moves
    too (it is system text).

The environment section and the git snapshot, wherever a client version puts them,
are rewritten the way the system_prompt stage writes them (``prompts/environment.j2``),
keeping every line they hold that trimkit does not know.

Project instructions always survive: ``project = "drop"`` is a configuration error.
The user's own words are never inside reminders and are never touched. A user message
is never removed (one left with nothing holds ``(no content)``); a ``role: "system"``
message left with nothing is removed, since it holds no turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

import msgspec
from msgspec.structs import replace

from trimkit import Stage, TrimState, hookimpl
from trimkit.agent_context import read_environment
from trimkit.memo import memoized
from trimkit.rewrite import appended_system, rewrite_message, rewrite_message_or_none
from trimkit.templates import render_template
from .parse import CATEGORIES, CLOSE, OPEN, Reminder, Section, date_of, file_entry, restored_paths, split

Action = Literal["keep", "unwrap", "drop", "move"]


class Actions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What becomes of each category of reminder; a category left out is kept.

    The fields are :data:`~trimkit.plugins.reminders.parse.CATEGORIES`, in that order.
    """

    project: Action = "keep"
    memory: Action = "keep"
    environment: Action = "keep"
    git_status: Action = "keep"
    date: Action = "keep"
    mcp_instructions: Action = "keep"
    skills: Action = "keep"
    agents: Action = "keep"
    hooks: Action = "keep"
    todo: Action = "keep"
    file_changed: Action = "keep"
    deferred_tools: Action = "keep"
    file_read_notice: Action = "keep"
    model: Action = "keep"
    attribution: Action = "keep"
    guidance: Action = "keep"
    restored_files: Action = "keep"
    unknown: Action = "keep"

    def __post_init__(self) -> None:
        if self.project == "drop":
            raise ValueError("project: cannot be 'drop', project instructions always survive")


SMALL = Actions(
    project="move",
    environment="move",
    git_status="move",
    date="move",
    mcp_instructions="move",
    memory="drop",
    skills="drop",
    agents="drop",
    hooks="unwrap",
    todo="drop",
    file_changed="unwrap",
    deferred_tools="drop",
    file_read_notice="drop",
    model="drop",
    attribution="drop",
    guidance="drop",
    restored_files="unwrap",
    unknown="unwrap",
)
MEDIUM = replace(SMALL, memory="unwrap")
# A large model can use the listings and context; only the per-turn nudges go.
LARGE = Actions(todo="drop", file_read_notice="drop")


class ReminderOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The reminders stage's options (``[stages.reminders]``): ``actions`` by category."""

    actions: Actions = MEDIUM


HEADINGS = {
    "project": "# Project instructions (CLAUDE.md)",
    "memory": "# Memory",
    "environment": "# Environment",
    "git_status": "# Git status",
    "mcp_instructions": "# MCP server instructions",
    "model": "# Model",
    "attribution": "# Commit attribution",
    "guidance": "# Agent guidance",
    "restored_files": "# Files read earlier",
    "skills": "# Skills",
    "agents": "# Agent types",
    "hooks": "# Hook output",
    "todo": "# Task list",
    "file_changed": "# Changed files",
    "deferred_tools": "# Deferred tools",
    "file_read_notice": "# Files read",
    "unknown": "# Context",
}
UNWRAPPED_HEADINGS = ("project", "memory", "mcp_instructions")
PROJECT_KIND = "project instructions"


def render(category: str, cleans: list[str], *, moved: bool) -> str:
    """The text unwrapped or moved content of one category reads as."""
    if category == "date":
        dates = [date_of(c) for c in cleans]
        if all(dates):
            return "Today's date: " + "; ".join(dates) + "."  # type: ignore[arg-type]
        return "\n\n".join(cleans)
    if category == "project":
        return project_text(cleans)
    if category in ("environment", "git_status"):
        return context_text(category, cleans)
    if category == "restored_files":
        return restored_text(cleans)
    body = "\n\n".join(cleans)
    heading = HEADINGS[category] if moved or category in UNWRAPPED_HEADINGS else None
    return f"{heading}\n\n{body}" if heading else body


def restored_text(cleans: list[str]) -> str:
    """After a compaction Claude Code puts back the files read last, whole (some 3,000
    tokens each): on a small window that alone fills it again, and the next request is a
    compaction too. Unwrapped, they become the names of those files, to read again when
    needed (a section holding only a file's contents becomes nothing)."""
    paths = list(dict.fromkeys(path for clean in cleans for path in restored_paths(clean)))
    if not paths:
        return ""
    return f"Read before the conversation was summarised: {', '.join(paths)} (read again if you need it)."


def context_text(category: str, cleans: list[str]) -> str:
    """An environment section or git snapshot as the compact prompts write it
    (``prompts/environment.j2``), followed by its lines trimkit does not know, verbatim."""
    parts = []
    for clean in cleans:
        reading = read_environment(clean, env_heading=category != "environment")
        rendered = render_template("environment.j2", env=reading.environment, git=reading.environment.git)
        parts.extend(filter(None, (rendered.strip("\n"), reading.kept)))
    return "\n\n".join(parts)


def project_heading(clean: str) -> tuple[str, str]:
    """The heading an instructions file goes under, and its text.

    Claude Code's ``Contents of <path> (<kind>):`` line becomes the heading:
    ``# Project instructions (<path>)`` for a project's own file, the kind itself for
    another (``# User's private global instructions for all projects (<path>)``).
    """
    entry = file_entry(clean)
    if entry is None:
        return HEADINGS["project"], clean
    path, kind, body = entry
    if kind is None or kind.lower().startswith(PROJECT_KIND):
        return f"# Project instructions ({path})", body
    return f"# {kind[:1].upper()}{kind[1:]} ({path})", body


def project_text(cleans: list[str]) -> str:
    """Project instructions, each file under a heading naming it (see :func:`project_heading`)."""
    parts: list[str] = []
    last = None
    for clean in cleans:
        heading, body = project_heading(clean)
        if heading != last:
            parts.append(heading)
            last = heading
        if body:
            parts.append(body)
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class Plan:
    """What becomes of one reminder: its replacement text (``None``: left as it is),
    characters removed and content moved, by category."""

    pieces: tuple[str, ...] | None
    removed: tuple[tuple[str, int], ...] = ()
    moved: tuple[tuple[str, str], ...] = ()


@memoized(16 * 1024 * 1024, size=lambda sections, *_: sum(len(s.raw) + len(s.clean) for s in sections))
def plan(sections: tuple[Section, ...], tagged: bool, actions: tuple[str, ...], movable: bool) -> Plan:
    """The :class:`Plan` for a reminder's sections under ``actions`` (one per category, in
    :data:`CATEGORIES` order). Pure, and memoized: the same reminders come back every turn,
    and parsed sections are shared objects whose strings hash once.

    In a movable ``role: "system"`` message (``movable`` and not ``tagged``), ``unwrap``
    moves too: that text is system text, and the system prompt is where it belongs."""
    by_category = dict(zip(CATEGORIES, actions))
    decided = []
    for section in sections:
        action = by_category[section.category]
        if action == "move" and not movable:
            action = "unwrap"
        elif action == "unwrap" and movable and not tagged:
            action = "move"
        decided.append((section, action))
    if all(action == "keep" for _, action in decided):
        return Plan(None)
    pieces: list[str] = []
    kept: list[str] = []
    removed: list[tuple[str, int]] = []
    moved: list[tuple[str, str]] = []
    for (category, action), group in groupby(decided, key=lambda d: (d[0].category, d[1])):
        group_sections = [section for section, _ in group]
        if action == "keep":
            kept.extend(s.raw for s in group_sections)
            continue
        cleans = [s.clean for s in group_sections if s.clean]
        gone = sum(len(s.raw) for s in group_sections)
        if action == "unwrap" and cleans:
            if kept:
                pieces.append(_wrap(kept, tagged))
                kept = []
            pieces.append(render(category, cleans, moved=False))
            gone -= len(pieces[-1])
        elif action == "move":
            moved.extend((category, clean) for clean in cleans)
            gone -= sum(map(len, cleans))
        removed.append((category, max(gone, 0)))
    if kept:
        pieces.append(_wrap(kept, tagged))
    elif tagged:
        removed.append((decided[0][0].category, len(OPEN) + len(CLOSE)))
    return Plan(tuple(pieces), tuple(removed), tuple(moved))


def _trim_seam(piece: str) -> str:
    """``piece`` without its blank lines at either end; the first line keeps its indentation."""
    body = piece.rstrip()
    stripped = body.lstrip()
    cut = body.rfind("\n", 0, len(body) - len(stripped))
    return body[cut + 1 :] if cut >= 0 else body


def _wrap(raws: list[str], tagged: bool) -> str:
    body = "".join(raws).strip()
    return f"{OPEN}\n{body}\n{CLOSE}" if tagged else body


class _Editor:
    """Rewrites the reminders in each message's text; collects what moves to the system prompt."""

    def __init__(self, actions: Actions, state: TrimState):
        self.actions = msgspec.structs.astuple(actions)
        self.state = state
        self.movable = False
        self.moved: dict[str, list[str]] = {}

    def user_text(self, text: str) -> str:
        return self._rewrite(text, split(text))

    def system_text(self, text: str) -> str:
        return self._rewrite(text, split(text, bare=True))

    def _rewrite(self, text: str, parts: list | None) -> str:
        if not parts:
            return text
        out: list[str] = []
        changed = False
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            pieces = self._apply(part)
            if pieces is None:
                out.append(part.raw)
            else:
                changed = True
                out.extend(pieces)
        if not changed:
            return text
        return "\n\n".join(filter(None, map(_trim_seam, out)))

    def _apply(self, reminder: Reminder) -> tuple[str, ...] | None:
        """What replaces ``reminder`` in the text; ``None`` when it stays as it is."""
        result = plan(reminder.sections, reminder.tagged, self.actions, self.movable)
        for category, chars in result.removed:
            self.state.removed(category, chars)
        for category, clean in result.moved:
            self.moved.setdefault(category, []).append(clean)
        return result.pieces

    def system_texts(self) -> list[str]:
        """One text per moved category, in the fixed category order; repeats dropped."""
        return [
            render(category, list(dict.fromkeys(self.moved[category])), moved=True)
            for category in CATEGORIES
            if self.moved.get(category)
        ]


def run(state: TrimState) -> None:
    editor = _Editor(state.options.actions, state)
    request = state.request
    messages = request.messages
    first_assistant = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
    first_user = next((i for i, m in enumerate(messages[:first_assistant]) if m.role == "user"), None)

    new_messages = []
    for index, message in enumerate(messages):
        if message.role == "assistant":
            new_messages.append(message)
            continue
        editor.movable = index < first_assistant and (message.role == "system" or index == first_user)
        if message.role == "system":
            rewritten = rewrite_message_or_none(message, editor.system_text)
            if rewritten is not None:
                new_messages.append(rewritten)
        else:
            new_messages.append(rewrite_message(message, editor.user_text))

    moved = editor.system_texts()
    if not moved and len(new_messages) == len(messages) and all(a is b for a, b in zip(new_messages, messages)):
        return
    changes: dict[str, Any] = {"messages": new_messages}
    if moved:
        changes["system"] = appended_system(request, *moved)
    state.request = replace(request, **changes)


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="reminders",
            run=run,
            options=ReminderOptions,
            tier_options={
                "small": ReminderOptions(actions=SMALL),
                "medium": ReminderOptions(actions=MEDIUM),
                "large": ReminderOptions(actions=LARGE),
            },
            order=300,
        )
    ]
