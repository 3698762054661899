"""Recognising a coding agent's system prompt by its structure, and the facts worth keeping.

A prompt is recognised when several independent signals agree (:data:`MIN_SIGNALS`
of the ones :func:`signals` looks for), so a reworded or reordered version still
matches while an SDK user's own prompt, which may share one or two traits, does not.
What is kept is the environment the agent runs in: the ``<env>`` facts and the git
status snapshot taken at the start of the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

MIN_SIGNALS = 3
_BLANKS = " \t\r"  # only these: str.strip() would also eat characters that can be in a path

# Canonical field name for each "Key: value" line an environment section may hold.
_ENV_KEYS = {
    "working directory": "working_directory",
    "additional working directories": "additional_directories",
    "is directory a git repo": "is_git_repo",
    "platform": "platform",
    "shell": "shell",
    "os version": "os_version",
    "today's date": "date",
}
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
class GitSnapshot:
    """The git status an agent prompt records at the start of a conversation."""

    branch: str | None = None
    main_branch: str | None = None
    user: str | None = None
    status: tuple[str, ...] = ()
    recent_commits: tuple[str, ...] = ()

    def truncated(self, max_status_lines: int, max_recent_commits: int | None = None) -> "GitSnapshot":
        """The snapshot with at most ``max_status_lines`` status lines and a marker for the
        rest, and the newest ``max_recent_commits`` commits (all when ``None``)."""
        snapshot = self
        hidden = len(self.status) - max_status_lines
        if hidden > 0:
            status = self.status[:max_status_lines] + (f"... ({hidden} more status lines not shown)",)
            snapshot = replace(snapshot, status=status)
        if max_recent_commits is not None and len(self.recent_commits) > max_recent_commits:
            snapshot = replace(snapshot, recent_commits=self.recent_commits[:max_recent_commits])
        return snapshot


@dataclass(frozen=True)
class Environment:
    """Facts about where the agent runs; ``None`` for what the prompt did not say."""

    working_directory: str | None = None
    additional_directories: str | None = None
    is_git_repo: str | None = None
    platform: str | None = None
    shell: str | None = None
    os_version: str | None = None
    date: str | None = None
    git: GitSnapshot | None = None


@dataclass(frozen=True)
class AgentPrompt:
    """A recognised agent system prompt: which agent, why, and what to keep from it."""

    agent: str
    signals: frozenset[str]
    environment: Environment = field(default_factory=Environment)


class _Scan(NamedTuple):
    environment: dict[str, str]
    headings: list[str]


def _scan(text: str) -> _Scan:
    """Environment lines and markdown headings, in one pass over the lines (no regex scan).

    A fact stated inside ``<env>...</env>`` wins over the same key found elsewhere.
    """
    in_env = False
    inside: dict[str, str] = {}
    outside: dict[str, str] = {}
    headings: list[str] = []
    for line in text.split("\n"):
        if line.startswith("#"):
            title = line.lstrip("#")
            if len(line) - len(title) <= 3 and title[:1] in (" ", "\t"):
                headings.append(title.strip(_BLANKS))
            continue
        key, colon, value = line.partition(":")
        if colon and len(key) <= 40:
            name = _ENV_KEYS.get(key.strip(_BLANKS).lower())
            value = value.strip(_BLANKS)
            found = inside if in_env else outside
            if name and value and name not in found:
                found[name] = value
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


def _git_start(text: str) -> int:
    start = text.find("gitStatus:")
    return start if start >= 0 else text.find("Current branch:")


def _signals(text: str, scan: _Scan) -> frozenset[str]:
    found = set()
    if len(scan.environment.keys() - {"date", "additional_directories"}) >= 2:
        found.add("environment")
    if sum(any(t in h.lower() for t in _HEADING_TOPICS) for h in scan.headings) >= 2:
        found.add("sections")
    if "gitStatus:" in text or ("Current branch:" in text and "Recent commits:" in text):
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


def _block_after(lines: list[str], index: int) -> tuple[tuple[str, ...], int]:
    """The non-blank lines following ``lines[index]`` up to the next blank line."""
    out = []
    index += 1
    while index < len(lines) and lines[index].strip(_BLANKS):
        out.append(lines[index].rstrip(_BLANKS))
        index += 1
    return tuple(out), index


def parse_git_snapshot(text: str) -> GitSnapshot | None:
    """Parse the snapshot that starts at ``gitStatus:`` (or ``Current branch:``), if any."""
    start = _git_start(text)
    if start < 0:
        return None
    fields: dict[str, object] = {}
    lines = text[start:].split("\n")
    index = 0
    while index < len(lines):
        line = lines[index].strip(_BLANKS)
        key, _, value = line.partition(":")
        key, value = key.lower(), value.strip(_BLANKS)
        if key == "current branch":
            fields["branch"] = value or None
        elif key.startswith("main branch"):
            fields["main_branch"] = value or None
        elif key == "git user":
            fields["user"] = value or None
        elif key == "status" and not value:
            fields["status"], index = _block_after(lines, index)
            continue
        elif key == "recent commits" and not value:
            fields["recent_commits"], index = _block_after(lines, index)
            break
        index += 1
    return GitSnapshot(**fields)  # type: ignore[arg-type]


def recognize(text: str) -> AgentPrompt | None:
    """An :class:`AgentPrompt` when ``text`` has the structure of Claude Code's system prompt."""
    scan = _scan(text)
    found = _signals(text, scan)
    if len(found) < MIN_SIGNALS:
        return None
    environment = Environment(**scan.environment, git=parse_git_snapshot(text))
    return AgentPrompt(agent="claude-code", signals=found, environment=environment)
