"""The output_format stage states a requested JSON schema in the system prompt."""

from __future__ import annotations

import json

from tests.fixtures import claude_code as cc
from trimkit import ModelProfile, Pipeline, TrimResult, encode
from trimkit.wire import system_text

PIPELINE = Pipeline(entry_points=False)
SMALL = ModelProfile.for_tier("small")


def run(request: dict) -> TrimResult:
    return PIPELINE.run_stage("output_format", request, SMALL)


def test_title_request_schema_is_taught_in_the_system_prompt():
    request = cc.title_request("fix the rounding bug")
    result = run(request)
    system = system_text(result.request)
    schema = request["output_config"]["format"]["schema"]
    assert system.endswith(json.dumps(schema, separators=(",", ":")))
    assert "single JSON object" in system
    assert "fix the rounding bug" in encode(result.request).decode()


def test_requests_without_a_format_are_unchanged_by_the_stage():
    request = {"model": "m", "max_tokens": 10, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}],
               "output_config": {"effort": "high"}}
    result = run(request)
    assert result.request is result.original
    assert result.report.before == result.report.after


def test_string_and_missing_system_prompts_get_the_instruction_as_a_block():
    fmt = {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}
    for system in ("You answer in JSON.", None):
        request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "output_config": fmt}
        if system:
            request["system"] = system
        out = run(request).request
        assert isinstance(out.system, list)
        assert out.system[-1].text.endswith('{"type":"object","properties":{"ok":{"type":"boolean"}}}')
        if system:
            assert out.system[0].text == system


def test_runs_after_tools_and_before_budget():
    names = [s.name for s in PIPELINE.stages]
    assert names.index("tools") < names.index("output_format") < names.index("budget")
