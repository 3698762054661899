"""Load: one generation at a time, a bounded queue, 529 at once beyond it, nobody gets another's tokens."""

from __future__ import annotations

import asyncio

import anthropic
import httpx

from tests.fixtures.hardening import EchoBackend, ValveBackend, base_request, serve
from tests.support.clients import async_sdk
from tests.support.polling import wait_until
from tests.support.sse import sse_events, streamed_text

CLIENTS = 32
CLIENT_TIMEOUT = 60.0  # bounds a hang only


def run_clients(url: str, clients: int, one) -> list:
    """Run ``one(client, i)`` for each client at once; a client past its timeout counts as "hung"."""

    async def main():
        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT, limits=limits) as client:
            async def bounded(i):
                try:
                    return await asyncio.wait_for(one(client, i), CLIENT_TIMEOUT)
                except (asyncio.TimeoutError, httpx.TimeoutException):
                    return ("hung", i)

            return await asyncio.gather(*(bounded(i) for i in range(clients)))

    return asyncio.run(main())


def test_beyond_the_queue_streams_get_529_at_once_while_the_model_is_still_busy():
    max_queue = 8
    backend = ValveBackend(chunks=3)
    statuses: dict[int, int] = {}

    async def one(client: httpx.AsyncClient, i: int):
        body = base_request(stream=True, messages=[{"role": "user", "content": f"client {i}"}])
        async with client.stream("POST", "/v1/messages", json=body) as response:
            statuses[i] = response.status_code
            raw = (await response.aread()).decode()
        return response.status_code, response.headers.get("x-should-retry"), raw

    with serve(backend, max_queue=max_queue) as live:
        async def scenario():
            task = asyncio.create_task(asyncio.to_thread(run_clients, live.url, CLIENTS, one))
            everyone_answered = await asyncio.to_thread(wait_until, lambda: len(statuses) == CLIENTS, 60)
            produced_while_refusing = backend.produced
            backend.open(10**6)
            return everyone_answered, produced_while_refusing, await task

        everyone_answered, produced_while_refusing, results = asyncio.run(scenario())
        health = httpx.get(live.url + "/health").json()

    assert everyone_answered and produced_while_refusing == 0, "the 529s waited for the model"
    refused = [r for r in results if r[0] == 529]
    served = [r for r in results if r[0] == 200]
    assert len(served) == 1 + max_queue and len(refused) == CLIENTS - 1 - max_queue
    for _, should_retry, raw in refused:
        error = httpx.Response(529, content=raw).json()
        assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
        assert should_retry == "true"
    for _, _, raw in served:
        assert [name for name, _ in sse_events(raw)][-1] == "message_stop"
    assert backend.generations == 1 + max_queue and health["queue"] == 0


def test_32_streaming_clients_each_complete_with_only_their_own_tokens():
    backend = EchoBackend(chunks=8, delay=0.004)

    async def one(client: anthropic.AsyncAnthropic, i: int):
        async with client.messages.stream(model="claude-opus-4-8", max_tokens=100,
                                          messages=[{"role": "user", "content": f"I am client-{i}"}]) as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            final = await stream.get_final_message()
        return "done", i, text, final.stop_reason

    async def main(url: str):
        async with async_sdk(url, timeout=CLIENT_TIMEOUT) as client:
            return await asyncio.gather(*(asyncio.wait_for(one(client, i), CLIENT_TIMEOUT) for i in range(CLIENTS)))

    with serve(backend, max_queue=CLIENTS) as live:
        results = asyncio.run(main(live.url))
        health = httpx.get(live.url + "/health").json()

    for _, i, text, stop_reason in results:
        assert text == f"<client-{i}>" * backend.chunks, f"client {i} got {text!r}"
        assert stop_reason == "end_turn"
    assert len(backend.started) == CLIENTS
    assert backend.most_active == 1, "two generations ran on the model at once"
    assert health["queue"] == 0


def test_mixed_clients_over_a_short_queue_each_complete_or_get_529():
    max_queue = 4
    backend = EchoBackend(chunks=6, delay=0.004)

    async def one(client: httpx.AsyncClient, i: int):
        stream = i % 2 == 0
        body = base_request(stream=stream, messages=[{"role": "user", "content": f"mixed-{i}"}])
        response = await client.post("/v1/messages", json=body)
        if response.status_code != 200:
            return response.status_code, i, response.json()
        if stream:
            assert sse_events(response.text)[-1][0] == "message_stop"
            text = streamed_text(response.text)
        else:
            text = response.json()["content"][0]["text"]
        return 200, i, text

    with serve(backend, max_queue=max_queue) as live:
        results = run_clients(live.url, CLIENTS, one)
        health = httpx.get(live.url + "/health").json()

    assert not [r for r in results if r[0] == "hung"]
    assert {r[0] for r in results} <= {200, 529}
    served = [r for r in results if r[0] == 200]
    assert len(served) >= 1 + max_queue  # the first arrivals always get a place
    for _, i, text in served:
        assert text == f"<mixed-{i}>" * backend.chunks
    for _, _, error in (r for r in results if r[0] == 529):
        assert error["error"]["type"] == "overloaded_error"
    assert backend.most_active == 1 and health["queue"] == 0
