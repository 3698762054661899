"""What coding agents tell a model about where it runs, in whichever form they write it.

Claude Code and OpenCode state the environment (working directory, platform, shell,
OS version, date) and a git snapshot next to much guidance of their own, and the form
moves from version to version: Claude Code 2.1.197 writes ``# Environment`` list items
(`` - Primary working directory: /path``) in its system prompt, its sub-agents and older
versions an ``<env>`` block of ``Working directory: /path`` lines, 2.1.332 puts the
``# Environment`` section in a ``role: "system"`` message and the git status in a
reminder; OpenCode writes an indented ``<env>`` block. :func:`read_environment` reads
every form into one :class:`Environment`, and keeps each line it does not recognise.

The agents' own guidance is known line by line: ``agent_lines.txt`` holds fingerprints
(:func:`fingerprint`) of the lines recorded agent prompts are made of, written by
``python -m trimkit.testing.recorder --catalogue``. A known line is the agent's, and a
compact prompt may stand in for it; any other line (text the user appended, an output
style, a section a new version added) is kept as it stands. A version that rewords its
prompt makes trimming less thorough, never lossy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Iterable, NamedTuple

BLANKS = " \t\r"  # only these: str.strip() would also eat characters that can be in a path
CATALOGUE = Path(__file__).with_name("agent_lines.txt")

FACT_KEYS = {
    "working directory": "working_directory",
    "primary working directory": "working_directory",
    "additional working directories": "additional_directories",
    "is directory a git repo": "is_git_repo",
    "is a git repository": "is_git_repo",
    "platform": "platform",
    "shell": "shell",
    "os version": "os_version",
    "today's date": "date",
}
"""Each ``Key: value`` line an environment may hold, by canonical field."""

MODEL_LINE_STARTS = (
    "you are powered by the model",
    "the exact model id is",
    "assistant knowledge cutoff",
    "the most recent claude models",
    "the most recent frontier claude model",
)
"""Lines about the frontier model the agent expected: wrong for a local one, never kept."""

_LIST_MARK = re.compile(r"^[ \t]*(?:[-*•][ \t]+)?")
_PATH = re.compile(r"(?<![\w.~])(?:~|/)[^\s`'\")\]]+")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class GitSnapshot:
    """The git status an agent records at the start of a conversation."""

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
    """Facts about where the agent runs (``None`` for what it did not say), the lines of its
    environment section that are no known fact (``other``, verbatim), and the git snapshot."""

    working_directory: str | None = None
    additional_directories: str | None = None
    is_git_repo: str | None = None
    platform: str | None = None
    shell: str | None = None
    os_version: str | None = None
    date: str | None = None
    git: GitSnapshot | None = None
    other: tuple[str, ...] = ()

    @property
    def facts(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in dict.fromkeys(FACT_KEYS.values()) if getattr(self, name)}

    def merged(self, other: "Environment") -> "Environment":
        """This environment with what ``other`` adds (facts this one lacks, its other lines)."""
        facts = {**other.facts, **self.facts}
        lines = self.other + tuple(line for line in other.other if line not in self.other)
        return Environment(**facts, git=self.git or other.git, other=lines)

    def __bool__(self) -> bool:
        return bool(self.facts or self.other or self.git)


# --------------------------------------------------------------------------- lines


def fingerprint(line: str) -> str:
    """A short hash of a line, blind to case, spacing, list marks, paths and numbers.

    Paths and numbers change with the user's machine and the agent's version; the
    sentence around them is what identifies the line.
    """
    text = _LIST_MARK.sub("", line).strip().lower()
    text = _DIGITS.sub("0", _PATH.sub("<path>", text))
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=8).hexdigest()


@cache
def catalogue() -> frozenset[str]:
    """The fingerprints in ``agent_lines.txt`` (comment lines start with ``#``)."""
    try:
        lines = CATALOGUE.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


class KnownLines:
    """Which lines are an agent's own: the catalogue plus ``extra`` fingerprints."""

    def __init__(self, extra: Iterable[str] = ()):
        self.fingerprints = catalogue() | frozenset(extra)

    @staticmethod
    @cache
    def default() -> "KnownLines":
        """The catalogue alone (built once)."""
        return KnownLines()

    @classmethod
    def with_text(cls, texts: Iterable[str]) -> "KnownLines":
        """The catalogue plus every line of ``texts``."""
        return cls(fingerprint(line) for text in texts for line in text.split("\n") if line.strip())

    def __contains__(self, line: str) -> bool:
        return fingerprint(line) in self.fingerprints


def is_model_line(line: str) -> bool:
    return _LIST_MARK.sub("", line).strip().lower().startswith(MODEL_LINE_STARTS)


def is_heading(line: str) -> bool:
    """A markdown heading of level 1 to 3 (``# Title``)."""
    title = line.lstrip("#")
    return line.startswith("#") and len(line) - len(title) <= 3 and title[:1] in (" ", "\t")


def fact(line: str) -> tuple[str, str] | None:
    """``(field, value)`` for a ``Key: value`` environment line (list marks allowed), else ``None``."""
    key, colon, value = _LIST_MARK.sub("", line).partition(":")
    if not colon or len(key) > 40:
        return None
    name = FACT_KEYS.get(key.strip(BLANKS).lower())
    value = value.strip(BLANKS)
    return (name, value) if name and value else None


_TOOL_FACT = re.compile(r"(?<![\w-])(Shell|OS): ([A-Za-z][\w.+-]*)")


def facts_in_tools(descriptions: Iterable[str | None]) -> tuple[tuple[str, str], ...]:
    """Environment facts a client states only in a tool's description (OpenCode's bash tool
    says ``Be aware: OS: linux, Shell: bash``), which a compact tool list may cut."""
    found: dict[str, str] = {}
    for description in descriptions:
        for key, value in _TOOL_FACT.findall(description or ""):
            found.setdefault("shell" if key == "Shell" else "platform", value)
    return tuple(found.items())


# --------------------------------------------------------------------------- git


class _GitSpan(NamedTuple):
    snapshot: GitSnapshot
    start: int
    end: int
    """Line indices: the snapshot is ``lines[start:end]``."""


def _block_after(lines: list[str], index: int) -> tuple[tuple[str, ...], int]:
    """The non-blank lines following ``lines[index]`` up to the next blank line."""
    out = []
    index += 1
    while index < len(lines) and lines[index].strip(BLANKS):
        out.append(lines[index].rstrip(BLANKS))
        index += 1
    return tuple(out), index


def _git_start(lines: list[str]) -> int | None:
    for marker in ("gitStatus:", "Current branch:"):
        for index, line in enumerate(lines):
            if line.strip(BLANKS).startswith(marker):
                return index
    return None


def git_span(lines: list[str], start: int | None = None) -> _GitSpan | None:
    """The snapshot that starts at a ``gitStatus:`` (or ``Current branch:``) line, with its extent."""
    start = _git_start(lines) if start is None else start
    if start is None:
        return None
    fields: dict[str, object] = {}
    index = start + (1 if lines[start].strip(BLANKS).startswith("gitStatus:") else 0)
    preamble = 0
    while index < len(lines):
        line = lines[index].strip(BLANKS)
        key, _, value = line.partition(":")
        key, value = key.lower(), value.strip(BLANKS)
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
        elif line:
            if fields or preamble >= 2:
                break
            preamble += 1
        index += 1
    return _GitSpan(GitSnapshot(**fields), start, index)  # type: ignore[arg-type]


def parse_git_snapshot(text: str) -> GitSnapshot | None:
    """Parse the snapshot that starts at ``gitStatus:`` (or ``Current branch:``), if any."""
    found = git_span(text.split("\n"))
    return found.snapshot if found else None


# --------------------------------------------------------------------------- environment


class Reading(NamedTuple):
    """A text read line by line: the environment in it and the lines kept as they stand."""

    environment: Environment
    kept: str
    """Lines that are neither facts, the agent's known lines nor model lines, with the
    headings they stood under, blank-line structure kept."""
    known: int
    """How many lines were the agent's known text or model lines."""
    lines: int
    """Non-blank lines read outside the git snapshot and the ``<env>`` tags."""


def read_environment(text: str, known: KnownLines | None = None, *, env_heading: bool = True) -> Reading:
    """Read ``text`` (a system prompt, a ``role: "system"`` message) line by line.

    Facts are read inside ``<env>...</env>`` and under an ``# Environment`` heading (and,
    when the text has neither, from ``Key: value`` lines anywhere); the git snapshot from
    ``gitStatus:`` on. A line of the environment section that is no fact, no model line
    and not ``known`` lands in :attr:`Environment.other`; such a line elsewhere lands in
    ``kept``, under its heading unless the heading is the agent's own (a line the user
    appended under the agent's last section reads as it was written, not as part of
    that section). ``env_heading=False`` reads a text that is itself the environment
    section.
    """
    known = known or KnownLines.default()
    lines = text.split("\n")
    span = git_span(lines)
    has_region = any(l.strip(BLANKS) == "<env>" or l.strip(BLANKS).lower() == "# environment" for l in lines)
    inside: dict[str, str] = {}
    outside: dict[str, str] = {}
    other: list[str] = []
    kept: list[str] = []
    heading: str | None = None
    in_block = False
    in_section = not env_heading
    own = counted = 0
    for index, line in enumerate(lines):
        stripped = line.strip(BLANKS)
        if span and span.start <= index < span.end:
            continue
        if not stripped:
            if kept and kept[-1]:
                kept.append("")
            continue
        counted += 1
        if stripped in ("<env>", "</env>"):
            in_block = stripped == "<env>"
            continue
        if is_heading(stripped):
            in_section = stripped.lstrip("#").strip(BLANKS).lower() == "environment"
            heading = None if in_section or line in known else line.rstrip(BLANKS)
            continue
        found = fact(line)
        if in_block or in_section:
            if found:
                inside.setdefault(*found)
            elif is_model_line(line) or line in known:
                own += 1
            else:
                other.append(_LIST_MARK.sub("", line).strip(BLANKS))
            continue
        if found and not has_region and found[0] not in outside:
            outside[found[0]] = found[1]
            continue
        if is_model_line(line) or line in known:
            own += 1
            continue
        if heading is not None:
            if kept and kept[-1]:
                kept.append("")
            kept.append(heading)
            heading = None
        kept.append(line.rstrip(BLANKS))
    environment = Environment(**{**outside, **inside}, git=span.snapshot if span else None, other=tuple(other))
    return Reading(environment, "\n".join(kept).strip("\n"), own, counted)
