"""Every built-in stage and every response reader takes a megabyte of hostile text in one pass.

Each string below is about 1 MB of one pattern that makes a backtracking regex or
a rescanning loop cost time quadratic in its length (unclosed tags, a label
followed by long runs of blanks, markers repeated without end). Each is put
everywhere a client's text reaches the stages (system prompt, environment, git
status, CLAUDE.md, reminders, tool descriptions and schemas, tool inputs and
results) and, for the readers, is the model's whole output. A linear pass takes
well under a second; the bound below only stops a hang, it does not time anything.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

import pytest

import trimkit
from trimkit.errors import PromptTooLong
from trimkit.profile import ModelProfile
from trimkit.redact import Redactor
from trimkit.toolcalls.dialects import DEFAULT, DIALECTS
from trimkit.toolcalls.response import ResponseBuilder
from trimkit.wire import Tool

from tests.fixtures import claude_code as cc
from tests.fixtures import claude_code_text as cc_text

SIZE = 1_000_000
HANG = 120  # seconds: a quadratic pass over 1 MB takes hours; a linear one, well under this

PATTERNS = {
    "unclosed example tags": "<example>",
    "example tags without an end": "<examples x ",
    "a date label then blanks": ("Today's date is x", " \t", "y"),
    "a date label then blanks and dots": ("Current date: x", ". \t", "y"),
    "an example tag then everything": ("<example>", "<", ""),
    "reminder tags": "<system-reminder>",
    "reminder tags with blanks": "<system-reminder> \n ",
    "headings": "# claudeMd\n# ",
    "file listings": "Contents of /a/CLAUDE.md (project instructions):",
    "environment lines": " - Primary working directory: /x\n - Is a git repository: ",
    "paths": "/a/b~/c.",
    "sentences without spaces": "x.\t",
    "key-like text": "sk-ant-sk-",
    "bearer words": "Bearer bearer ",
    "angle brackets": "<</",
    "quotes and escapes": "\"'\\",
    "brackets": "{[(",
    "blank lines with blanks": "\n \t \n",
    "hook words": "hook success hook ",
    "total token tags": "<total_tokens>",
    "git status lines": "Status:\n M a\n?? b\n",
    "words in capitals": "ABCdefGHI",
    "URL schemes without a host": "ab://cd:ef",
    "a scheme and a long user": ("postgres://", "u", ":p"),
    "private key openings": "-----BEGIN RSA PRIVATE KEY-----\n",
    "secret labels": "password=token: ",
    "JWT heads": "eyJabcdefgh.eyJ",
}


def blob(pattern: str | tuple[str, str, str]) -> str:
    """About :data:`SIZE` characters: a unit repeated, or ``(head, unit, tail)`` with the unit repeated between."""
    head, unit, tail = ("", pattern, "") if isinstance(pattern, str) else pattern
    return head + (unit * (SIZE // len(unit) + 1))[: SIZE - len(head) - len(tail)] + tail


@contextmanager
def hang_bound(seconds: int):
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def hostile_request(text: str) -> dict:
    """A Claude-Code-shaped request carrying ``text`` wherever a stage reads client text."""
    request = cc.first_request()
    request["system"] = cc.system_blocks(cwd=text[:200_000], git_status=text)
    reminder = cc_text.CLAUDE_MD_REMINDER.format(cwd=text[:1000], claude_md=text, today=text)
    tools = {tool["name"]: tool for tool in request["tools"]}
    tools["Read"] = {**tools["Read"], "description": text}  # tools every tier keeps
    schema = tools["Bash"]["input_schema"]
    first = next(iter(schema["properties"]))
    tools["Bash"] = {**tools["Bash"], "description": text, "input_schema": {**schema, "properties": {
        **schema["properties"], first: {"type": "string", "description": text}}}}
    request["tools"] = list(tools.values())
    request["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": reminder}, {"type": "text", "text": text}]},
        {"role": "system", "content": [{"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"},
                                       {"type": "text", "text": text}]},
        {"role": "assistant", "content": [{"type": "text", "text": text},
                                          {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                           "input": {"command": text}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": text},
                                     {"type": "text", "text": f"<system-reminder>{text}</system-reminder>"}]},
    ]
    return request


PIPELINE = trimkit.Pipeline()
STAGES = [stage.name for stage in PIPELINE.stages]


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_stage_reads_a_megabyte_of_hostile_text_in_one_pass(pattern):
    request = trimkit.wire.decode_request(hostile_request(blob(PATTERNS[pattern])))
    for tier, names in (("small", [*STAGES, None]), ("large", [None])):
        profile = ModelProfile(name="m", context_window=32_768, tier=tier)
        for name in names:
            with hang_bound(HANG):
                try:
                    result = PIPELINE.run_stage(name, request, profile) if name else PIPELINE.trim(request, profile)
                except PromptTooLong:  # the budget's clear refusal of a last turn no window holds
                    continue
            assert result.request.messages, name


@pytest.mark.slow
def test_captures_redact_a_megabyte_of_hostile_text_in_one_pass():
    redactor = Redactor(["server-side-secret"])
    for pattern in PATTERNS.values():
        text = blob(pattern)
        with hang_bound(HANG):
            redactor.text(text)
            redactor.data({"messages": [{"content": text}], text[:1000]: text})


TOOLS = [Tool(name="Read", input_schema={"type": "object", "properties": {"file_path": {"type": "string"}}}),
         Tool(name="Bash", input_schema={"type": "object", "properties": {"command": {"type": "string"}}})]


GENERIC_OUTPUTS = {
    "invoke without an end": '<invoke name="Read"><parameter name="file_path">',
    "parameters that never close": '<parameter name="x">',
    "function calls wrapper repeated": "<function_calls>\n",
    "open braces": '{"a": [{"b": ',
    "quotes and escapes": "'\"\\",
    "angle brackets": "<</<",
}
"""Output every reader meets alike (each also reads trimkit's XML convention): read once, by the default."""


def model_outputs(dialect) -> dict[str, str]:
    """Hostile model output for ``dialect``: its own markers repeated, and calls whose JSON never closes."""
    markers = [*dialect.call_markers, *(m for pair in dialect.reasoning_markers for m in pair)]
    outputs = {}
    for marker in dict.fromkeys(markers):
        outputs[f"{marker!r} repeated"] = marker
        outputs[f"{marker!r} then open JSON"] = marker + '{"name": "Read", "arguments": {"file_path": "'
    if dialect is DEFAULT:
        outputs.update(GENERIC_OUTPUTS)
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.name for d in DIALECTS])
def test_every_reader_reads_a_megabyte_of_hostile_model_output_in_one_pass(dialect):
    for name, pattern in model_outputs(dialect).items():
        text = blob(pattern)
        stops = ["never-appears", pattern[:40] + "\x00"]  # one that the output keeps almost matching
        builder = ResponseBuilder(TOOLS, stops, dialect=dialect, thinking=True, thinking_open=None)
        with hang_bound(HANG):
            for i in range(0, SIZE, 2048):
                builder.feed(text[i : i + 2048])
            builder.finish("length")
        assert builder.stop_reason == "max_tokens", name
