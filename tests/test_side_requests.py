"""Side requests (a session title, a suggested prompt) never delay the user's turn.

Claude Code sends its title request a moment before the user's turn; on one generation
slot the user used to wait for the title's whole generation. Now the queue serves the
user's turn first and a side request holding the slot steps aside for it, to be
answered whole afterwards; a title can also be answered without the model.
"""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from tests.fixtures import client_shapes as shapes
from tests.fixtures.hardening import base_request, profile, serve
from tests.support.polling import wait_until
from tests.support.sse import sse_events
from trimkit import decode_request
from trimkit.backends.base import Finished, TextDelta
from trimkit.backends.replay import ReplayBackend
from trimkit.request_kind import RequestKind, classify, title_from_words
from trimkit.server.gate import GenerationGate

TITLE_INSTRUCTION = "Generate a concise, sentence-case title (3-7 words) that captures the main topic of this session."


def claude_code_title(words: str = "count the carts", stream: bool = True) -> dict:
    """Claude Code's title request, in its recorded shape (our wording)."""
    return {"model": "claude-haiku-4-5", "max_tokens": 32000, "stream": stream,
            "system": [{"type": "text", "text": TITLE_INSTRUCTION}],
            "output_config": {"format": {"type": "json_schema", "schema": {
                "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
                "additionalProperties": False}}},
            "messages": [{"role": "user", "content": [{"type": "text", "text": f"<session>\n{words}\n</session>"}]}]}


def opencode_title(words: str = "count the carts") -> dict:
    """OpenCode's title request, in its recorded shape (our wording)."""
    return {"model": "claude-haiku-4-5", "max_tokens": 4000, "stream": True,
            "system": [{"type": "text", "text": "You are a title generator. You output ONLY a thread title."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Generate a title for this conversation:\n"},
                                                      {"type": "text", "text": f'"{words}"'}]}]}


def compaction() -> dict:
    request = shapes.claude_code_2_1_197()
    request["messages"].append({"role": "user", "content": "Your task is to create a detailed summary of the "
                                                           "conversation so far, paying close attention to the requests."})
    return request


# --------------------------------------------------------------------------- telling them apart


@pytest.mark.parametrize("request_, kind", [
    (claude_code_title(), RequestKind.TITLE),
    (opencode_title(), RequestKind.TITLE),
    (compaction(), RequestKind.COMPACTION),
    (shapes.claude_code_2_1_197(), RequestKind.MAIN),
    (shapes.claude_code_2_1_332("write a title for my essay"), RequestKind.MAIN),
    (shapes.opencode_1_18("generate a title for this conversation"), RequestKind.MAIN),
    (base_request(), RequestKind.MAIN),
], ids=["claude-code-title", "opencode-title", "compaction", "main-2.1.197", "main-2.1.332", "main-opencode", "sdk"])
def test_requests_are_told_apart_by_their_structure(request_, kind):
    assert classify(decode_request(request_)) is kind
    assert kind.side == (kind in (RequestKind.TITLE, RequestKind.SUGGESTION))


def test_a_title_from_the_users_words_has_the_shape_each_client_asked_for():
    assert json.loads(title_from_words(decode_request(claude_code_title("fix the cart totals, please")))) == {
        "title": "Fix the cart totals, please"}
    assert title_from_words(decode_request(opencode_title("count the carts in src and tests"))) == \
        "Count the carts in src and"


# --------------------------------------------------------------------------- the queue


def test_the_queue_grants_urgent_tickets_first_in_arrival_order():
    async def scenario():
        gate = GenerationGate(max_queue=8)
        holder = gate.reserve()
        await holder.acquire()
        order = []
        waiters = [(name, gate.reserve(urgent=urgent)) for name, urgent in
                   (("side-1", False), ("main-1", True), ("side-2", False), ("main-2", True))]

        async def take(name, ticket):
            await ticket.acquire()
            order.append(name)
            ticket.release()

        tasks = [asyncio.create_task(take(name, ticket)) for name, ticket in waiters]
        await asyncio.sleep(0)
        holder.release()
        await asyncio.gather(*tasks)
        return order, gate.busy

    assert asyncio.run(scenario()) == (["main-1", "main-2", "side-1", "side-2"], 0)


def test_a_side_request_holding_the_slot_is_asked_to_step_aside_for_the_users_turn():
    async def scenario():
        gate = GenerationGate(max_queue=8)
        side = gate.reserve(urgent=False)
        await side.acquire()
        main = gate.reserve(urgent=True)
        main_task = asyncio.create_task(main.acquire())
        await asyncio.sleep(0)
        asked = side.yield_requested.is_set()
        side.step_aside()
        await main_task
        again = asyncio.create_task(side.acquire())
        await asyncio.sleep(0)
        waited = not again.done()
        main.release()
        await again
        side.release()
        return asked, waited, gate.busy

    assert asyncio.run(scenario()) == (True, True, 0)


def test_a_waiter_that_goes_away_leaves_no_trace():
    async def scenario():
        gate = GenerationGate(max_queue=8)
        holder = gate.reserve()
        await holder.acquire()
        waiter = gate.reserve(urgent=False)
        task = asyncio.create_task(waiter.acquire())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        waiter.release()
        holder.release()
        last = gate.reserve()
        await asyncio.wait_for(last.acquire(), 1)
        last.release()
        return gate.busy

    assert asyncio.run(scenario()) == 0


# --------------------------------------------------------------------------- through the server


class KindBackend(ReplayBackend):
    """Generates a title or an answer, each only as far as the test lets it; logs every step."""

    def __init__(self):
        super().__init__([], profile=profile())
        self.log: list[tuple[str, str]] = []
        self.allowed = {"title": threading.Event(), "main": threading.Event()}

    async def generate(self, messages, params):
        label = "title" if any("<session>" in m["content"] for m in messages) else "main"
        self.log.append((label, "start"))
        finished = False
        try:
            while not self.allowed[label].is_set():
                await asyncio.sleep(0.002)
            for piece in (['{"title": ', '"Cart totals"}'] if label == "title" else ["Done", "."]):
                yield TextDelta(piece)
            finished = True
            yield Finished(finish="stop", input_tokens=10, output_tokens=2)
        finally:
            self.log.append((label, "done" if finished else "stopped"))


def _text_of(response: httpx.Response) -> str:
    if response.headers["content-type"].startswith("text/event-stream"):
        return "".join(d["delta"]["text"] for n, d in sse_events(response.text) if n == "content_block_delta")
    return response.json()["content"][0]["text"]


@pytest.mark.parametrize("stream", [True, False])
def test_the_users_turn_is_served_before_a_title_that_arrived_first(stream):
    backend = KindBackend()
    answers: dict[str, httpx.Response] = {}
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        def post(name, body):
            answers[name] = client.post("/v1/messages", json=body)

        title = threading.Thread(target=post, args=("title", claude_code_title(stream=stream)))
        title.start()
        assert wait_until(lambda: ("title", "start") in backend.log)
        main = threading.Thread(target=post, args=("main", base_request(stream=stream)))
        main.start()
        assert wait_until(lambda: ("main", "start") in backend.log)
        backend.allowed["main"].set()
        main.join(30)
        assert "title" not in answers
        backend.allowed["title"].set()
        title.join(30)
        health = client.get("/health").json()
    assert backend.log == [("title", "start"), ("title", "stopped"), ("main", "start"), ("main", "done"),
                           ("title", "start"), ("title", "done")]
    assert _text_of(answers["main"]) == "Done."
    assert json.loads(_text_of(answers["title"])) == {"title": "Cart totals"}
    assert health["queue"] == 0


def test_a_title_waits_behind_the_users_turn_that_holds_the_slot():
    backend = KindBackend()
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        main = threading.Thread(target=client.post, args=("/v1/messages",), kwargs={"json": base_request()})
        main.start()
        assert wait_until(lambda: ("main", "start") in backend.log)
        title = threading.Thread(target=client.post, args=("/v1/messages",), kwargs={"json": claude_code_title()})
        title.start()
        assert wait_until(lambda: client.get("/health").json()["queue"] == 2)
        backend.allowed["title"].set()
        backend.allowed["main"].set()
        main.join(30)
        title.join(30)
    assert backend.log == [("main", "start"), ("main", "done"), ("title", "start"), ("title", "done")]


@pytest.mark.parametrize("request_, expected", [
    (claude_code_title("count the carts"), '{"title": "Count the carts"}'),
    (opencode_title("count the carts"), "Count the carts"),
])
def test_quick_titles_answers_titles_without_the_model(request_, expected):
    backend = KindBackend()
    with serve(backend, quick_titles=True) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        answer = client.post("/v1/messages", json=request_)
    assert answer.status_code == 200 and _text_of(answer) == expected
    assert backend.log == []
