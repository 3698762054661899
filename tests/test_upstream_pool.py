"""Several upstream engines behind one trimkit, against scripted upstreams.

tests/test_engines.py runs the same with two real llama-server processes, one
killed while requests are in flight.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from trimkit.backends import upstream as upstream_module
from trimkit.backends.pool import UpstreamPool
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer, free_port

from tests.support.clients import sdk
from tests.support.polling import wait_until
from tests.support.sse import sse_events
from tests.upstreams import FakeUpstream, openai_turn

USER = [{"role": "user", "content": "hello there"}]


def pool_server(*urls: str, **settings) -> LiveServer:
    return LiveServer(create_app(ServerSettings(backend="openai", upstreams=list(urls),
                                                upstream_model="fake-model", **settings)))


def ask(url: str) -> str:
    return sdk(url).messages.create(model="claude-x", max_tokens=8, messages=USER).content[0].text


def test_two_engines_make_a_pool_and_health_lists_both():
    with FakeUpstream(openai_turn("a")) as a, FakeUpstream(openai_turn("b")) as b, pool_server(a.url, b.url) as server:
        health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok"
    assert health["detail"] == "2 of 2 upstreams in service"
    assert [e["upstream"] for e in health["upstreams"]] == [a.url, b.url]


def test_upstream_and_upstreams_together_name_each_engine_once():
    with FakeUpstream(openai_turn("a")) as a, FakeUpstream(openai_turn("b")) as b:
        app = create_app(ServerSettings(backend="openai", upstream=a.url, upstreams=[a.url, b.url],
                                        upstream_model="fake-model"))
        with LiveServer(app) as server:
            health = httpx.get(server.url + "/health").json()
    assert [e["upstream"] for e in health["upstreams"]] == [a.url, b.url]


def test_requests_go_to_the_engine_with_the_fewest_in_flight():
    release = threading.Event()  # both engines answer only once all six requests are in flight
    with FakeUpstream(openai_turn("a"), hold=release) as a, FakeUpstream(openai_turn("b"), hold=release) as b, \
            pool_server(a.url, b.url) as server:
        answers: list[str] = []
        threads = [threading.Thread(target=lambda: answers.append(ask(server.url))) for _ in range(6)]
        for thread in threads:
            thread.start()
        all_in_flight = wait_until(lambda: len(a.requests) + len(b.requests) == 6, 60)
        release.set()
        for thread in threads:
            thread.join(60)
        assert all_in_flight
        counts = (len(a.requests), len(b.requests))
    assert sorted(answers) == ["a"] * 3 + ["b"] * 3
    assert counts == (3, 3)


def test_a_dead_engine_is_skipped_without_the_client_noticing():
    dead = free_port()  # nothing listens there
    with FakeUpstream(openai_turn("alive")) as alive, pool_server(f"http://127.0.0.1:{dead}", alive.url) as server:
        answers = [ask(server.url) for _ in range(4)]
        health = httpx.get(server.url + "/health").json()
    assert answers == ["alive"] * 4 and len(alive.requests) == 4
    assert health["status"] == "ok" and health["detail"] == "1 of 2 upstreams in service"
    assert not health["upstreams"][0]["ready"] and "unreachable" in health["upstreams"][0]["detail"]


def test_an_engine_that_breaks_a_stream_is_taken_out_and_used_again_once_it_answers(monkeypatch):
    monkeypatch.setattr(upstream_module, "PROBE_RETRY_SECONDS", 0.2)
    flaky = FakeUpstream(openai_turn("one", " two")[:2], cut=True).__enter__()
    with FakeUpstream(openai_turn("steady")) as steady, pool_server(flaky.url, steady.url) as server:
        raws = [httpx.post(server.url + "/v1/messages", timeout=30, json={
            "model": "claude-x", "max_tokens": 8, "messages": USER, "stream": True}).text for _ in range(2)]
        broken = [raw for raw in raws if sse_events(raw)[-1][0] == "error"]
        assert len(broken) == 1 and len(flaky.requests) == 1  # the other went to the steady engine
        flaky.__exit__(None, None, None)  # the engine is gone: requests keep going to the other
        assert [ask(server.url) for _ in range(3)] == ["steady"] * 3
        with FakeUpstream(openai_turn("mended"), port=flaky.port):  # restarted on its port
            both = "2 of 2 upstreams in service"
            probed = wait_until(lambda: httpx.get(server.url + "/health").json()["detail"] == both, 60)
            assert probed, "the engine was never probed again"
            answers = {ask(server.url) for _ in range(4)}
    assert answers == {"mended", "steady"}
    assert sse_events(broken[0])[-1][1]["error"]["type"] == "api_error"


def test_with_every_engine_down_the_client_gets_529_naming_them():
    ports = [free_port(), free_port()]
    with pool_server(*(f"http://127.0.0.1:{p}" for p in ports)) as server:
        response = httpx.post(server.url + "/v1/messages", timeout=30,
                              json={"model": "claude-x", "max_tokens": 8, "messages": USER})
        health = httpx.get(server.url + "/health")
    assert response.status_code == 529 and response.json()["error"]["type"] == "overloaded_error"
    assert all(str(p) in response.json()["error"]["message"] for p in ports)
    assert health.status_code == 503


def test_the_window_is_the_smallest_of_the_engines_in_service():
    with FakeUpstream(models=[{"id": "fake-model", "max_model_len": 8192}]) as a, \
            FakeUpstream(models=[{"id": "fake-model", "max_model_len": 4096}]) as b:
        settings = ServerSettings(backend="openai", upstreams=[a.url, b.url], upstream_model="fake-model")
        backend = upstream_module.make_upstream_backend(settings)
    assert isinstance(backend, UpstreamPool)
    assert backend.profile.context_window == 4096
    assert backend.max_concurrency == 2 * settings.upstream_concurrency


def test_a_pool_needs_an_engine():
    with pytest.raises(ValueError, match="needs --upstream"):
        upstream_module.make_upstream_backend(ServerSettings(backend="openai"))
