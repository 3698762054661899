"""Find ``<system-reminder>`` blocks in message text and say what each part of them is.

Claude Code wraps context it adds to a conversation in ``<system-reminder>`` tags: the
project's CLAUDE.md and today's date in the first user message, hook output, todo
nudges, file-changed notices, skill and agent listings, and a note appended to every
file it reads. One reminder may hold several kinds at once (the first one carries
``# claudeMd``, ``# currentDate`` and possibly ``# memory`` sections under a common
preamble), so a reminder is parsed into :class:`Section` s, each with a category.

Classification looks at structure first (section headings, ``Contents of <path>``
lines, the opening sentence) and then at keywords in the first line and the first
few hundred characters, so it costs the same for a 20 KB CLAUDE.md as for a one-line
nudge. Text that matches nothing is ``guidance`` when every line of it is a line the
agent is known to write (:mod:`trimkit.agent_context`), else ``unknown``. Parses are memoized by text, since the same reminders come back every turn.

A tag only opens a reminder at the start of a line: a file that merely mentions the
tag (source code, a log) is text, not a reminder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trimkit.agent_context import KnownLines
from trimkit.memo import memoized

OPEN = "<system-reminder>"
CLOSE = "</system-reminder>"

CATEGORIES = (
    "project",
    "memory",
    "environment",
    "git_status",
    "date",
    "mcp_instructions",
    "skills",
    "agents",
    "hooks",
    "todo",
    "file_changed",
    "deferred_tools",
    "file_read_notice",
    "model",
    "attribution",
    "guidance",
    "restored_files",
    "unknown",
)

BOILERPLATE = (
    "As you answer the user's questions, you can use the following context:",
    "IMPORTANT: this context may or may not be relevant to your tasks. You should not "
    "respond to this context unless it is highly relevant to your task.",
    "Codebase and user instructions are shown below. Be sure to adhere to these "
    "instructions. IMPORTANT: These instructions OVERRIDE any default behavior and you "
    "MUST follow them exactly as written.",
)

# Section headings of Claude Code's context reminder, and what each holds. A memory
# heading only splits when the text after it looks like memory (see _accepted), so a
# "# memory" heading inside someone's CLAUDE.md stays part of the project instructions.
HEADINGS = {
    "claudeMd": "project",
    "currentDate": "date",
    "memory": "memory",
    "autoMemory": "memory",
    "important-instruction-reminders": "unknown",
    "gitStatus": "git_status",
    "Environment": "environment",
    "MCP Server Instructions": "mcp_instructions",
}
_HEADING = re.compile(r"^# (" + "|".join(map(re.escape, HEADINGS)) + r")[ \t]*$", re.M)
_CONTENTS_LINE = re.compile(r"^Contents of [^\n]*:[ \t]*$", re.M)
_HOOK = re.compile(
    r"\bhook (?:success|additional context|blocking error|non-blocking error|error|feedback|"
    r"stopped continuation|cancelled)\b",
    re.I,
)
_DATE_LABEL = re.compile(r"Today's date is|Today's date:|Current date:?", re.I)

HEAD_CHARS = 400
CACHE_CHARS = 16 * 1024 * 1024
"""Characters of reminder text :func:`parse` keeps results for (a client's reminders repeat every turn)."""

# Checked in order, first against the first line and then against the head, lowercased.
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("restored_files", ("called the read tool with the following input", "result of calling the read tool")),
    ("environment", ("you have been invoked in the following environment",
                     "useful information about the environment you are running in")),
    ("git_status", ("this is the git status at the start of the conversation",)),
    ("mcp_instructions", ("mcp servers have provided instructions",)),
    ("attribution", ("attribution for git commits",)),
    ("model", ("you are powered by the model", "knowledge cutoff")),
    ("file_read_notice", ("would be considered malware",)),
    ("file_changed", ("was modified, either by the user or by a linter", "by the user or by a linter")),
    ("todo", ("todowrite", "todo list", "task tools", "taskcreate", "taskupdate", "task list")),
    ("deferred_tools", ("deferred tool", "toolsearch", "available-deferred-tools")),
    ("skills", ("skill tool", "skills are available", "available skills", "available_skills")),
    ("agents", ("agent type", "subagent_type", "available agents", "agent tool", "when you launch multiple agents")),
    ("date", ("today's date", "current date", "currentdate")),
    ("memory", ("memory.md", "auto-memory", "auto memory", "persistent memory")),
    ("project", ("claude.md", "project instructions", "codebase and user instructions")),
)


@dataclass(frozen=True, slots=True)
class Section:
    """One classified part of a reminder.

    ``raw`` is the exact source text (heading and preamble included), so the raw
    texts of a reminder's sections join back into its inner text. ``clean`` is the
    content alone: no heading, no boilerplate sentences, stripped; it may be empty.
    """

    category: str
    raw: str
    clean: str


@dataclass(frozen=True, slots=True)
class Reminder:
    """A reminder found in text: ``raw`` as found (tags included when ``tagged``)."""

    raw: str
    sections: tuple[Section, ...]
    tagged: bool = True


def split(text: str, *, bare: bool = False) -> list[str | Reminder] | None:
    """``text`` cut into plain strings and :class:`Reminder` s, in order.

    ``None`` when the text holds no reminder. With ``bare`` (a ``role: "system"``
    message), text outside the tags counts as a reminder too.
    """
    pos = text.find(OPEN)
    while pos > 0 and text[pos - 1] != "\n":
        pos = text.find(OPEN, pos + 1)
    if pos < 0 and not bare:
        return None
    parts: list[str | Reminder] = []
    start = 0
    while pos >= 0:
        end = text.find(CLOSE, pos + len(OPEN))
        if end < 0:
            break
        end += len(CLOSE)
        if pos > start:
            parts.append(text[start:pos])
        inner = text[pos + len(OPEN) : end - len(CLOSE)]
        parts.append(Reminder(text[pos:end], parse(inner)))
        start = end
        pos = text.find(OPEN, start)
        while pos > 0 and text[pos - 1] != "\n":
            pos = text.find(OPEN, pos + 1)
    if start < len(text):
        parts.append(text[start:])
    if bare:
        parts = [
            Reminder(p, parse(p, bare=True), tagged=False) if isinstance(p, str) and p.strip() else p
            for p in parts
        ]
    return parts


@memoized(CACHE_CHARS)
def parse(inner: str, bare: bool = False) -> tuple[Section, ...]:
    """The sections of a reminder's inner text (memoized: reminders repeat every turn).

    ``bare`` text (a ``role: "system"`` message) is also cut between paragraphs, since
    a client puts several listings and notices in one such message (the environment,
    the agent types, MCP server instructions, the skills, the date): see
    :func:`_paragraph_pieces`.
    """
    sections: list[Section] = []
    pieces = _paragraph_pieces(inner) if bare else _heading_pieces(inner)
    for index, (start, body, end, category) in enumerate(pieces):
        if category == "project" or (category is None and _starts_like_project(inner[body:end])):
            cuts = _file_entries(inner, body, end)
            for n, (entry_start, entry_end) in enumerate(cuts):
                clean = _clean(inner[entry_start:entry_end])
                raw_start = start if n == 0 else entry_start
                sections.append(Section(_file_category(clean) or "project", inner[raw_start:entry_end], clean))
            continue
        clean = _clean(inner[body:end])
        if category is None:
            category = classify(clean)
        sections.append(Section(category, inner[start:end], clean))
    return _fold_empty_preamble(sections)


def classify(text: str) -> str:
    """The category of one section's clean text."""
    head = text[:HEAD_CHARS].lstrip()
    by_path = _file_category(head)
    if by_path:
        return by_path
    first_line = head.split("\n", 1)[0]
    if _HOOK.search(first_line):
        return "hooks"
    if _DATE_LABEL.match(head):
        return "date"
    for scope in (first_line.lower(), head.lower()):
        for category, needles in KEYWORDS:
            if any(needle in scope for needle in needles):
                return category
    return "guidance" if _known_lines(text) else "unknown"


def _known_lines(text: str) -> bool:
    """Whether every line of ``text`` is a line the agent is known to write (its own guidance)."""
    known = KnownLines.default()
    lines = [line for line in text.split("\n") if line.strip()]
    return bool(lines) and all(line in known for line in lines)


_RESTORED = re.compile(r"^Called the Read tool with the following input: (\{.*\})[ \t]*$", re.M)


def restored_paths(text: str) -> list[str]:
    """The files a "Called the Read tool with the following input" section restored, in order."""
    import json

    paths = []
    for match in _RESTORED.finditer(text):
        try:
            path = json.loads(match.group(1)).get("file_path")
        except ValueError:
            path = None
        if isinstance(path, str) and path not in paths:
            paths.append(path)
    return paths


def date_of(text: str) -> str | None:
    """The date a date section states ("2025-10-14"); ``None`` when it has no usual form.

    The rest of the label's line (or of the next line with text), less one full stop.
    Read with string methods: a lazy regex ending in ``\\.?[ \\t]*$`` retried its tail at
    every character of a long line and cost time quadratic in the line's length.
    """
    label = _DATE_LABEL.search(text)
    if label is None:
        return None
    start = label.end()
    while start < len(text) and text[start].isspace():
        start += 1
    end = text.find("\n", start)
    line = text[start : end if end >= 0 else len(text)].rstrip(" \t")
    return line.removesuffix(".").strip() or None


# --------------------------------------------------------------------------- parsing


def _heading_pieces(inner: str) -> list[tuple[int, int, int, str | None]]:
    """(start, body start, end, heading category) for each part between accepted headings."""
    heads = [m for m in _HEADING.finditer(inner) if _accepted(m, inner)]
    if not heads:
        return [(0, 0, len(inner), None)]
    pieces: list[tuple[int, int, int, str | None]] = []
    if inner[: heads[0].start()].strip():
        pieces.append((0, 0, heads[0].start(), None))
    for n, match in enumerate(heads):
        start = 0 if n == 0 and not pieces else match.start()
        end = heads[n + 1].start() if n + 1 < len(heads) else len(inner)
        pieces.append((start, match.end(), end, HEADINGS[match.group(1)]))
    return pieces


def _continues(previous: str, block: str) -> bool:
    """Whether paragraph ``block`` belongs to the one before it: the earlier one introduces
    it (ends with a colon, or is a lone heading), or it is a list or a sub-heading."""
    last = previous.rstrip().rsplit("\n", 1)[-1]
    return (
        last.endswith(":")
        or (previous.strip().count("\n") == 0 and previous.lstrip().startswith("#"))
        or block.lstrip(" ").startswith(("- ", "* ", "## ", "### "))
    )


def _paragraph_pieces(inner: str) -> list[tuple[int, int, int, str | None]]:
    """Pieces of bare text: a new one at each paragraph that does not continue the one
    before it (see :func:`_continues`). A known heading (``# Environment``, ``# MCP Server
    Instructions``) names its piece's category; other pieces are classified by their text,
    so a paragraph the client never sent before is its own piece, ``unknown``, and kept."""
    starts = [0]
    previous = None
    for block in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", inner):
        text = block.group()
        if not text.strip():
            continue
        if previous is not None and not _continues(previous, text):
            starts.append(block.start() + len(text) - len(text.lstrip("\n")))
        previous = text
    pieces = []
    for start, end in zip(starts, starts[1:] + [len(inner)]):
        heading = _HEADING.match(inner, start)
        if heading and _accepted(heading, inner):
            pieces.append((start, heading.end(), end, HEADINGS[heading.group(1)]))
        else:
            pieces.append((start, start, end, None))
    return pieces


def _accepted(match: re.Match, inner: str) -> bool:
    """``# claudeMd`` and ``# currentDate`` are unmistakable; ``# memory`` must be followed by memory."""
    if HEADINGS[match.group(1)] != "memory":
        return True
    return classify(inner[match.end() : match.end() + HEAD_CHARS]) == "memory"


def _starts_like_project(text: str) -> bool:
    text = text.lstrip()
    return text.startswith(BOILERPLATE[2]) or (
        text.startswith("Contents of ") and _file_category(text) is not None
    )


def _file_entries(inner: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the ``Contents of <path> (...):`` entries between ``start`` and ``end``."""
    starts = [m.start() for m in _CONTENTS_LINE.finditer(inner, start, end)]
    if not starts or inner[start : starts[0]].strip() not in ("", BOILERPLATE[2]):
        starts.insert(0, start)
    else:
        starts[0] = start
    return list(zip(starts, starts[1:] + [end]))


def _file_category(text: str) -> str | None:
    """``project`` or ``memory`` for text that opens with ``Contents of <CLAUDE.md or MEMORY.md>``."""
    if not text.startswith("Contents of "):
        return None
    line = text.split("\n", 1)[0]
    path = line[len("Contents of ") :].split(" (", 1)[0].rstrip(":")
    name = path.rsplit("/", 1)[-1].upper()
    if name == "MEMORY.MD" or "auto-memory" in line:
        return "memory"
    if name.startswith("CLAUDE") and name.endswith(".MD"):
        return "project"
    return None


def file_entry(clean: str) -> tuple[str, str | None, str] | None:
    """``(path, kind, body)`` of a section that opens with ``Contents of <path> (<kind>):``;
    ``kind`` is ``None`` when the line names none. ``None`` for any other text."""
    line, _, body = clean.partition("\n")
    if not _CONTENTS_LINE.fullmatch(line):
        return None
    named = line[len("Contents of ") :].rstrip(" \t")[:-1]
    path, paren, kind = named.rpartition(" (") if named.endswith(")") else ("", "", "")
    if not paren or not path:
        return named, None, body.strip()
    return path, kind[:-1], body.strip()


def _clean(text: str) -> str:
    for sentence in BOILERPLATE:
        if sentence in text:
            text = text.replace(sentence, "")
    return text.strip()


def _fold_empty_preamble(sections: list[Section]) -> list[Section] | tuple[Section, ...]:
    """A leading section with nothing in it joins the next one (so its raw text travels along)."""
    if len(sections) > 1 and not sections[0].clean:
        first, second = sections[0], sections[1]
        sections = [Section(second.category, first.raw + second.raw, second.clean), *sections[2:]]
    return tuple(sections)
