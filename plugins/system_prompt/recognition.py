"""Recognising a coding agent's system prompt by its structure, and what to keep from it.

A prompt is recognised when several independent signals agree (:data:`MIN_SIGNALS`
of the ones :func:`signals` looks for), or when most of its lines are lines the agent
is known to write (:mod:`trimkit.agent_context`), so a reworded or reordered version
still matches while an SDK user's own prompt, which may share one or two traits, does
not. What is kept is the environment the agent runs in (its facts, in any of the forms
agents write them, and the git snapshot) and every line that is neither a fact nor the
agent's own known text: text the user appended, an output style, project instructions
(OpenCode puts them in its system prompt), a section a newer version added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from trimkit.agent_context import (
    BLANKS,
    Environment,
    GitSnapshot,
    KnownLines,
    fact,
    is_heading,
    parse_git_snapshot,
    read_environment,
)

__all__ = ["AgentPrompt", "Environment", "GitSnapshot", "MIN_SIGNALS", "parse_git_snapshot", "recognize", "signals"]

MIN_SIGNALS = 3
MIN_KNOWN_LINES = 5
_HEADING_TOPICS = (
    "tone", "style", "task", "tool", "convention", "proactiv", "code", "git", "commit", "security",
)
_NOT_TOOL_NAMES = frozenset(
    {"The", "This", "That", "These", "Each", "Any", "Every", "A", "An", "One", "Your", "Which", "Other",
     "Some", "Same", "New", "Use", "IMPORTANT", "NEVER", "MUST"}
)
_IDENTITY_PHRASES = (
    "claude code", "interactive cli tool", "official cli", "command line tool",
    "in the user's terminal",
)
_MODEL_PHRASES = ("you are powered by the model", "knowledge cutoff")


@dataclass(frozen=True)
class AgentPrompt:
    """A recognised agent system prompt: which agent, why, and what to keep from it."""

    agent: str
    signals: frozenset[str]
    environment: Environment = field(default_factory=Environment)
    kept: str = ""
    """The prompt's lines that are neither facts nor the agent's known text, verbatim."""


class _Scan(NamedTuple):
    environment: dict[str, str]
    headings: list[str]


def _scan(text: str) -> _Scan:
    """Environment facts and markdown headings, in one pass over the lines (no regex scan).

    A fact stated inside ``<env>...</env>`` or under ``# Environment`` wins over the
    same key found elsewhere.
    """
    in_env = False
    inside: dict[str, str] = {}
    outside: dict[str, str] = {}
    headings: list[str] = []
    for line in text.split("\n"):
        if is_heading(line):
            title = line.lstrip("#").strip(BLANKS)
            headings.append(title)
            in_env = title.lower() == "environment"
            continue
        found = fact(line)
        if found:
            where = inside if in_env else outside
            where.setdefault(*found)
        elif line.startswith("<env>") or line.startswith("</env>"):
            in_env = line[1] != "/"
    return _Scan({**outside, **inside}, headings)


def _named_tools(text: str) -> set[str]:
    """Capitalised words right before " tool" or " tools" ("the Bash tool")."""
    names = set()
    at = text.find(" tool")
    while at >= 0:
        end = at + 5
        if text[end : end + 1] == "s":
            end += 1
        if end == len(text) or not text[end].isalnum():
            before = text[max(0, at - 40) : at].rsplit(None, 1)
            word = before[-1].strip("`'\"(") if before else ""
            if word[:1].isupper() and word.isalpha() and word not in _NOT_TOOL_NAMES:
                names.add(word)
        at = text.find(" tool", end)
    return names


def _signals(text: str, scan: _Scan) -> frozenset[str]:
    found = set()
    if len(scan.environment.keys() - {"date", "additional_directories"}) >= 2:
        found.add("environment")
    if sum(any(t in h.lower() for t in _HEADING_TOPICS) for h in scan.headings) >= 2:
        found.add("sections")
    if "gitStatus" in text or ("Current branch:" in text and "Recent commits:" in text):
        found.add("git_status")
    lowered = text.lower()
    if any(phrase in lowered for phrase in _IDENTITY_PHRASES):
        found.add("identity")
    if len(_named_tools(text)) >= 2:
        found.add("tool_policy")
    if any(phrase in lowered for phrase in _MODEL_PHRASES):
        found.add("model_line")
    return frozenset(found)


def signals(text: str) -> frozenset[str]:
    """The structural traits of a coding agent's prompt that ``text`` shows.

    ``environment``: two or more environment lines (working directory, platform, ...);
    ``sections``: two or more markdown headings about tone, tasks, tools, code or git;
    ``git_status``: a git status snapshot; ``identity``: the agent names itself as a CLI
    coding tool; ``tool_policy``: two or more tools referred to by name ("the Bash tool");
    ``model_line``: the "powered by the model" / knowledge-cutoff lines.
    """
    return _signals(text, _scan(text))


def _agent(text: str) -> str:
    return "opencode" if "opencode" in text[:400].lower() else "claude-code"


def recognize(text: str, known: KnownLines | None = None) -> AgentPrompt | None:
    """An :class:`AgentPrompt` when ``text`` has the structure of a coding agent's system prompt.

    ``known`` is the agent's own text (by default the built-in catalogue).
    """
    scan = _scan(text)
    found = _signals(text, scan)
    reading = read_environment(text, known)
    if reading.known >= MIN_KNOWN_LINES and 2 * reading.known >= reading.lines:
        found |= {"known_lines"}
    elif len(found) < MIN_SIGNALS:
        return None
    return AgentPrompt(agent=_agent(text), signals=found, environment=reading.environment, kept=reading.kept)
