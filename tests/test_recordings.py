"""The pipeline on requests recorded from the real clients, as they are today.

The ``recorded_clients`` fixture runs Claude Code (the pinned version and the newest on
npm) and OpenCode through :mod:`trimkit.testing.recorder` once and keeps the requests in
the cache. A test here fails when a client version moves something trimkit would then
lose: the working directory, platform, shell, OS, git status, CLAUDE.md, the date, the
user's words, text the user appended to the system prompt or a sub-agent's answer.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trimkit
from tests.support.tool_ids import tool_ids
from trimkit import ModelProfile, decode_request, encode
from trimkit.render import prompt_text
from trimkit.request_kind import RequestKind
from trimkit.testing.recorder import CASES, SUBAGENT_PROMPT, TITLE, stated_facts

pytestmark = pytest.mark.e2e

VERSIONS = (("claude-code", "pinned"), ("claude-code", "newest"), ("opencode", "pinned"))
RECORDED = [pytest.param(client, version, case.name, id=f"{client}@{version}/{case.name}")
            for client, version in VERSIONS for case in CASES if case.client == client]
TIERS = ("small", "medium", "large")
PIPELINE = trimkit.Pipeline()
ROOMY = {t: ModelProfile.for_tier(t, context_window=10_000_000, prefill_tps=1e12) for t in TIERS}


def requests(recorded_clients, client, version, case):
    found = [r for r in recorded_clients.get(client, version) if r.case == case and r.is_messages]
    assert found, f"{client} {version} sent nothing in {case}"
    return found


@pytest.mark.parametrize("client,version,case", RECORDED)
def test_the_client_did_what_the_case_asked(recorded_clients, client, version, case):
    recs = requests(recorded_clients, client, version, case)
    manifest = recs[0].manifest
    assert manifest["exit_status"] == 0, manifest
    kinds = [r.kind for r in recs]
    if case == "tool_round_trip":
        assert manifest["wrote_hello"] == "hello world\n"
    if case == "compaction":
        assert kinds.count(RequestKind.COMPACTION) == 1 and kinds[-1] is RequestKind.COMPACTION
    if case == "subagent":
        assert any(SUBAGENT_PROMPT in prompt_text(decode_request(r.body)).rsplit("<|user|>", 1)[-1] for r in recs)
    if case == "terminal_ui":
        assert {RequestKind.TITLE, RequestKind.MAIN, RequestKind.SUGGESTION} <= set(kinds)
    for recording in recs:
        assert not (recording.body.get("tools") and recording.kind is RequestKind.TITLE), recording.id


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("client,version,case", RECORDED)
def test_every_fact_the_client_stated_survives_trimming(recorded_clients, client, version, case, tier):
    for recording in requests(recorded_clients, client, version, case):
        original = prompt_text(decode_request(recording.body))
        trimmed = prompt_text(PIPELINE.trim(recording.body, ModelProfile.for_tier(tier)).request)
        lost = [name for name, text in stated_facts(recording, original).items() if text not in trimmed]
        assert not lost, f"{recording.id} on the {tier} tier loses: {', '.join(lost)}"
        assert "(no content)" not in trimmed


@pytest.mark.parametrize("client,version,case", RECORDED)
def test_agent_loop_requests_shrink_and_side_requests_keep_their_own_prompt(recorded_clients, client, version, case):
    for recording in requests(recorded_clients, client, version, case):
        result = PIPELINE.trim(recording.body, ModelProfile.for_tier("small"))
        if recording.kind is RequestKind.TITLE:
            assert result.carry.recognized_agent is None, recording.id
        elif recording.body.get("tools"):
            assert result.carry.recognized_agent == client, recording.id
            assert result.report.after.chars < result.report.before.chars / 4, recording.id


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("client,version", [v for v in VERSIONS])
def test_a_tool_round_trip_reuses_the_first_requests_prompt(recorded_clients, client, version, tier):
    first, *rest = [r for r in requests(recorded_clients, client, version, "tool_round_trip") if not r.kind.side]
    a = prompt_text(PIPELINE.trim(first.body, ROOMY[tier]).request)
    b = prompt_text(PIPELINE.trim(rest[-1].body, ROOMY[tier]).request)
    assert b.startswith(a)


def test_title_requests_are_recognised_from_both_clients(recorded_clients):
    titles = [r for client, version in (("claude-code", "pinned"), ("opencode", "pinned"))
              for r in recorded_clients.get(client, version) if r.case == "first_turn" and r.kind is RequestKind.TITLE]
    assert {r.client for r in titles} == {"claude-code", "opencode"}
    assert TITLE


@pytest.mark.parametrize("client,version", [v for v in VERSIONS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_recorded_session_grown_by_generated_turns_trims_validly(recorded_clients, client, version, data):
    """The property tests' invariants, on a recorded first request carried on with generated turns."""
    firsts = [r for r in recorded_clients.get(client, version) if r.kind is RequestKind.MAIN and len(r.body["messages"]) <= 2]
    body = copy.deepcopy(data.draw(st.sampled_from(firsts)).body)
    tools = [t["name"] for t in body.get("tools") or []]
    words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)
    for i in range(data.draw(st.integers(0, 4))):
        name = data.draw(st.sampled_from(tools)) if tools else None
        said = [{"type": "text", "text": data.draw(words)}]
        use = [{"type": "tool_use", "id": f"toolu_gen_{i}", "name": name, "input": {"x": data.draw(words)}}] if name else []
        body["messages"].append({"role": "assistant", "content": said + use})
        result = [{"type": "tool_result", "tool_use_id": f"toolu_gen_{i}", "content": data.draw(words)}] if name else []
        body["messages"].append({"role": "user", "content": result + [{"type": "text", "text": data.draw(words)}]})
    tier = data.draw(st.sampled_from(TIERS))
    one = PIPELINE.trim(copy.deepcopy(body), ModelProfile.for_tier(tier))
    two = PIPELINE.trim(copy.deepcopy(body), ModelProfile.for_tier(tier))
    assert encode(one.request) == encode(two.request)
    uses, results = tool_ids(one.request)
    assert uses == results
    last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    last_words = last if isinstance(last, str) else last[-1].get("text", "")
    assert last_words.strip() in prompt_text(one.request)
