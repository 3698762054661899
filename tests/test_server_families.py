"""Every model family through the real server path: a tiny model with the family's tokenizer and
template, its reply forced token by token, read back by the family's dialect, sent with the SDK.

The cases are in :mod:`trimkit.testing.family_cases` (``benchmarks/bench_families.py`` prints the
same matrix as a table); this file asserts each applicable one, streaming and not.
"""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("mlx_lm")

from tests.support.clients import sdk
from tests.support.sse import sse_events
from trimkit.backends.mlx import MLXBackend
from trimkit.testing import live_app
from trimkit.testing.family_cases import CASES, READ_A, UNDECLARED, case_named, request_for, run_case
from trimkit.testing.families import FAMILIES, Reply, Script, family


READ_PENDING: dict[str, set[str]] = {}
"""Cases a family's reader (trimkit.toolcalls.dialects) does not read yet: expected to fail, and
the test fails when one starts passing, so the entry is removed as the reader lands."""


def pending(name: str, case: str):
    return pytest.mark.xfail(case in READ_PENDING.get(name, ()), reason=f"the {name} reader does not read this yet",
                             strict=True)


class Served:
    def __init__(self, model_dir, **settings):
        self.script = Script(model_dir)
        self.backend = MLXBackend(str(model_dir), logits_processors=self.script).wait_ready(30)
        self.server = live_app("mlx", self.backend, model=str(model_dir), tier="large", **settings).__enter__()
        self.client = sdk(self.server.url, timeout=120)

    def close(self):
        self.server.__exit__(None, None, None)
        self.backend.close()


@pytest.fixture(scope="module")
def served(family_model):
    made: dict[str, Served] = {}

    def get(name: str, **settings) -> Served:
        key = name + repr(sorted(settings.items()))
        if key not in made:
            made[key] = Served(family_model(name), **settings)
        return made[key]

    yield get
    for each in made.values():
        each.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("name, case", [
    pytest.param(name, case, marks=pending(name, case.name), id=f"{name}-{case.name.replace(' ', '-')}")
    for name in sorted(FAMILIES) for case in CASES
])
def test_family_case(name, case, stream, served):
    fam = family(name)
    if not case.applies(fam):
        pytest.skip(f"{case.name} does not apply to {name}")
    each = served(name)
    outcome = run_case(each.client, each.script, fam, case, stream=stream, special_tokens=each.backend.special_tokens)
    assert outcome.ok, outcome.detail


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pending(name, "thinking on")) for name in ("gemma4", "gpt_oss", "qwen3", "minimax_m2")
])
def test_thinking_streams_as_thinking_deltas_then_one_signature(name, served):
    each = served(name)
    case = case_named("thinking on")
    each.script.push(*case.replies(family(name)))
    with httpx.stream("POST", each.server.url + "/v1/messages", json={**request_for(case), "stream": True},
                      timeout=60) as response:
        events = [data for _, data in sse_events("".join(response.iter_text()))]
    first = events[2]  # message_start, ping, then the thinking block
    assert first["type"] == "content_block_start"
    assert first["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    kinds = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert kinds[-1] == "signature_delta" and set(kinds[:-1]) == {"thinking_delta"}
    thought = "".join(e["delta"]["thinking"] for e in events
                      if e["type"] == "content_block_delta" and e["delta"]["type"] == "thinking_delta")
    assert thought.strip() == "The file comes first."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("name", [pytest.param("qwen3_coder", marks=pending("qwen3_coder", "retry after an undeclared tool"))])
def test_a_retry_that_fails_too_gives_the_client_the_text(name, stream, served):
    each = served(name)
    fam = family(name)
    bad = fam.write(Reply(calls=(UNDECLARED,)), thinking=False)
    each.script.push(bad, bad)
    body = {**request_for(case_named("single call"))}
    body.pop("thinking")
    if stream:
        with each.client.messages.stream(**body) as events:
            message = events.get_final_message()
    else:
        message = each.client.messages.create(**body)
    assert [b.type for b in message.content] == ["text"]
    assert "<function=Frobnicate>" in message.content[0].text
    assert message.stop_reason == "end_turn"
    correction = each.script.decode(each.script.prompts[-1])
    assert "Your call to Frobnicate was not made" in correction
    assert correction.count("<function=Frobnicate>") == 1  # the failed call, shown as the model's turn
    assert each.script.pending == 0


def test_with_retries_off_a_failed_call_is_text_at_once(served):
    each = served("qwen3_coder", retry_tool_calls=False)
    fam = family("qwen3_coder")
    each.script.push(fam.write(Reply(calls=(UNDECLARED,)), thinking=False), fam.write(Reply(calls=(READ_A,)),
                                                                                        thinking=False))
    body = request_for(case_named("single call"))
    body.pop("thinking")
    prompts = len(each.script.prompts)
    message = each.client.messages.create(**body)
    assert [b.type for b in message.content] == ["text"]
    assert len(each.script.prompts) == prompts + 1
    each.script.clear()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_health_says_how_tools_reach_the_model_and_are_read_back(name, served):
    health = httpx.get(served(name).server.url + "/health", timeout=10).json()
    assert (health["convention"], health["tool_format"]) == ("native", family(name).dialect)


def test_convention_xml_teaches_trimkits_xml_to_a_template_that_renders_tools(served):
    each = served("qwen3_coder", convention="xml")
    assert httpx.get(each.server.url + "/health", timeout=10).json()["convention"] == "xml"
    each.script.push("<function_calls>\n<invoke name=\"Read\">\n<parameter name=\"file_path\">/a</parameter>\n"
                     "</invoke>\n</function_calls>")
    message = each.client.messages.create(**{k: v for k, v in request_for(case_named("single call")).items()
                                             if k != "thinking"})
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", "Read", {"file_path": "/a"})]
    prompt = each.script.decode(each.script.prompts[-1])
    assert '<tool name="Read">' in prompt and "<function>\n<name>Read</name>" not in prompt
