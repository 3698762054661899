"""Trim reports as HTML: one request's page and the live view's list of recent requests.

The server's live view (``/ui``) and ``trimkit inspect --html`` render the same
templates from ``pages/`` (kept apart from the prompt templates in ``prompts/``),
so a request looks the same in the browser and in a saved file. Everything is
escaped (autoescaping is on for every template), and nothing here reaches out: the
chart is inline SVG, and a saved report carries its stylesheet inside.

A :class:`RequestView` holds what a page may show of a request: numbers, names
and, only where the caller has the right to show them, :class:`RequestTexts`
(the prompt's diff and the response). The server fills ``texts`` only when
captures are on; without them no prompt text reaches a page.
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Iterable, Sequence

import jinja2

from .resources import pages_dir
from .stage import TrimReport

MAX_DIFF_LINES = 4000
"""A diff longer than this is cut (with a line saying how much): a browser tab stays responsive."""
MAX_RESPONSE_CHARS = 200_000
CHART_WIDTH = 640
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


@dataclass
class RequestTexts:
    """What a request said, for pages that may show it: the prompt's unified diff and the response."""

    diff: list[tuple[str, str]] = field(default_factory=list)
    """(kind, line): kind is ``add``, ``del``, ``hunk``, ``file``, ``note`` or ``same``."""
    prompt: str = ""
    """The trimmed prompt, as ``trimkit inspect --show`` prints it."""
    response: str = ""


@dataclass
class RequestView:
    """One request as the pages show it. ``status`` is None while it runs; times are seconds."""

    id: int
    at: float
    """When it arrived (seconds since the epoch)."""
    client: str = ""
    model: str = ""
    """The model the client asked for."""
    served: str = ""
    """The model that answered (its configured name)."""
    tier: str = ""
    stream: bool = False
    kind: str = ""
    report: TrimReport | None = None
    tools_offered: list[str] = field(default_factory=list)
    status: int | None = None
    error_type: str = ""
    error: str = ""
    cancelled: bool = False
    queue_wait: float | None = None
    ttft: float | None = None
    prefill_tps: float | None = None
    decode_tps: float | None = None
    prefilled_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str = ""
    tool_calls: list[str] = field(default_factory=list)
    texts: RequestTexts | None = None

    @property
    def state(self) -> str:
        """``running``, ``ok``, ``cancelled`` or ``error``: what the row's colour says."""
        if self.cancelled:
            return "cancelled"
        if self.status is None:
            return "running"
        return "error" if self.status >= 400 or self.error_type else "ok"


# ---------------------------------------------------------------- pieces the templates draw


def diff_lines(before: str, after: str, *, limit: int = MAX_DIFF_LINES) -> list[tuple[str, str]]:
    """The unified diff of two prompts as classed lines, at most ``limit`` of them."""
    lines: list[tuple[str, str]] = []
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", n=1, lineterm="")
    for count, line in enumerate(diff):
        if count == limit:
            rest = sum(1 for _ in diff) + 1
            lines.append(("note", f"… {rest:,} more lines of diff not shown"))
            break
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        lines.append((kind, line))
    return lines


def prompt_texts(before: str, after: str) -> RequestTexts:
    """The texts of a trim: the diff from ``before`` to ``after``, and ``after`` itself (cut short when huge)."""
    shown = after if len(after) <= MAX_RESPONSE_CHARS else after[:MAX_RESPONSE_CHARS] + "\n… (cut)"
    return RequestTexts(diff=diff_lines(before, after), prompt=shown)


def response_text(content: Iterable[Any], *, limit: int = MAX_RESPONSE_CHARS) -> str:
    """Response content blocks (as JSON-like dicts) as text a person reads: text, thinking and tool calls."""
    parts = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text", ""))
        elif kind == "thinking":
            parts.append(f"[thinking]\n{block.get('thinking', '')}")
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input", {}), ensure_ascii=False, indent=1)
            parts.append(f"[tool_use {block.get('name', '')}]\n{arguments}")
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + f"\n… {len(text) - limit:,} more characters"


@dataclass
class ChartRow:
    name: str
    delta: int
    """Characters the stage removed (negative: added)."""
    width: float
    colour: str


def stage_chart(report: TrimReport, width: int = CHART_WIDTH) -> list[ChartRow]:
    """One bar per stage, as long as the characters it removed (or added), to the scale of the largest."""
    deltas = [(s.name, s.chars_before - s.chars_after) for s in report.stages]
    largest = max((abs(d) for _, d in deltas), default=0) or 1
    return [ChartRow(name, delta, round(width * abs(delta) / largest, 1), PALETTE[i % len(PALETTE)])
            for i, (name, delta) in enumerate(deltas)]


def removal_segments(report: TrimReport, width: int) -> list[tuple[str, int, float, float, str]]:
    """(stage, chars, x, width, colour) of each stage's removal, as parts of one bar of ``width``
    standing for the request as received."""
    total = max(report.before.chars, 1)
    x, segments = 0.0, []
    for i, stage in enumerate(report.stages):
        delta = stage.chars_before - stage.chars_after
        if delta > 0:
            part = width * delta / total
            segments.append((stage.name, delta, round(x, 1), round(part, 1), PALETTE[i % len(PALETTE)]))
            x += part
    return segments


def _number(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _compact(value: float | int | None) -> str:
    """12,345 → 12.3k: numbers for a narrow column."""
    if value is None:
        return "–"
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    if size >= 10_000:
        return f"{value / 1e3:.0f}k"
    if size >= 1_000:
        return f"{value / 1e3:.1f}k"
    return f"{value:,}" if isinstance(value, int) else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}/s"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


def _ratio(report: TrimReport) -> str:
    return f"{report.before.chars / max(report.after.chars, 1):.1f}×"


def _removed(removed: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(removed.items(), key=lambda kv: -kv[1])


@cache
def environment() -> jinja2.Environment:
    """The page templates' environment: autoescaping on for everything, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(pages_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(number=_number, compact=_compact, seconds=_seconds, rate=_rate, clock=_clock, iso=_iso,
                       ratio=_ratio, removed=_removed)
    env.globals.update(stage_chart=stage_chart, removal_segments=removal_segments, chart_width=CHART_WIDTH)
    return env


def asset(name: str) -> str:
    """A stylesheet or script from ``pages/`` as text (served as a file, or inlined into a saved report)."""
    return (pages_dir() / name).read_text(encoding="utf-8")


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


# ---------------------------------------------------------------- whole pages


def report_file(view: RequestView, *, source: str = "") -> str:
    """One request's report as a self-contained HTML file (``trimkit inspect --html``)."""
    return render("report.html", view=view, source=source, css=asset("page.css"))


def rows(views: Sequence[RequestView]) -> str:
    """The live view's table rows, newest first as given."""
    return render("rows.html", views=views)


def live_page(views: Sequence[RequestView], *, header: dict[str, Any], texts_shown: bool, locked: bool) -> str:
    """The live view: the server's state and the recent requests (``locked``: it has a logout button)."""
    return render("live.html", views=views, header=header, texts_shown=texts_shown, locked=locked)


def status_bar(header: dict[str, Any]) -> str:
    return render("status.html", header=header)


def detail_page(view: RequestView, *, texts_shown: bool) -> str:
    return render("detail.html", view=view, texts_shown=texts_shown)


def login_page(*, failed: bool) -> str:
    return render("login.html", failed=failed)
