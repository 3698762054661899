"""A server of several models: tiny MLX models of three sizes under a memory cap that fits two.

Through a live server and the official SDK: every request is answered, models are
loaded and unloaded in least-recently-used order, a pinned model stays, MLX's own
counters stay under the cap, a model too big for the cap is a 400 the client does
not retry, and each request is trimmed for the model it was routed to.
"""

from __future__ import annotations

import asyncio
import threading

import anthropic
import httpx
import pytest

import trimkit
from tests.support.agents import TrimRecorder
from tests.support.clients import sdk
from tests.support.models import stand_in_set
from trimkit.backends import make_models
from trimkit.config.settings import ModelSettings, ServerSettings
from trimkit.server import create_app
from trimkit.testing import LiveServer

USER = [{"role": "user", "content": "hello there"}]
SIZES = {"small": dict(hidden=128, layers=2, heads=2), "mid": dict(hidden=256, layers=4, heads=4),
         "big": dict(hidden=384, layers=4, heads=4)}
WINDOW = 1024


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Three tiny random models of different sizes (about 1.4, 8.7 and 17.7 MB of weights)."""
    pytest.importorskip("mlx.core", reason="MLX is not installed")
    from trimkit.testing.tinymodel import build_tiny_model

    root = tmp_path_factory.mktemp("three-models")
    return {name: build_tiny_model(root / name, seed=i, **shape) for i, (name, shape) in enumerate(SIZES.items())}


def settings_for(model_dirs, *, cap=None, pinned=(), **more) -> ServerSettings:
    tables = [ModelSettings(model=str(path), alias=name, pinned=name in pinned) for name, path in model_dirs.items()]
    return ServerSettings(models=tables, context_window=WINDOW, memory_cap=cap or 10**12, **{"max_output_tokens": 16, **more})


def reservations(model_dirs) -> dict[str, int]:
    models = make_models(settings_for(model_dirs))
    return {r.name: r.reservation() for r in models.residents}


def cap_for_two(model_dirs) -> int:
    """Room for the two largest together, so for any two, and never for all three."""
    sizes = reservations(model_dirs)
    cap = sizes["mid"] + sizes["big"] + sizes["small"] // 2
    assert sum(sizes.values()) > cap
    return cap


def lru_events(sequence: list[str], capacity: int, loaded: list[str]) -> list[tuple[str, str]]:
    """The loads and unloads a least-recently-used set of ``capacity`` models makes for ``sequence``."""
    order, events = list(loaded), []
    for name in sequence:
        if name in order:
            order.remove(name)
        else:
            if len(order) == capacity:
                events.append(("unload", order.pop(0)))
            events.append(("load", name))
        order.append(name)
    return events


def answered(client, model: str) -> anthropic.types.Message:
    message = client.messages.create(model=model, max_tokens=8, messages=USER)
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens >= 1
    return message


def test_requests_alternating_three_models_are_all_answered_in_lru_order_under_the_cap(model_dirs):
    import mlx.core as mx

    cap = cap_for_two(model_dirs)
    models = make_models(settings_for(model_dirs, cap=cap))
    sequence = ["small", "mid", "big", "small", "small", "mid", "big", "big", "mid", "small", "big", "mid",
                "claude-haiku-4-5", "claude-opus-4-8", "mid", "claude-sonnet-4-6"]
    routed = [{"claude-haiku-4-5": "small", "claude-opus-4-8": "big", "claude-sonnet-4-6": "big"}.get(m, m)
              for m in sequence]
    with LiveServer(create_app(settings_for(model_dirs, cap=cap), models=models)) as server:
        client = sdk(server.url)
        assert httpx.get(server.url + "/health").json()["status"] in ("ok", "loading")
        for _ in range(400):  # the default model (big) loads first
            if models.loaded() == ["big"]:
                break
            threading.Event().wait(0.05)
        mx.reset_peak_memory()
        for model in sequence:
            answered(client, model)
            assert mx.get_active_memory() - models.baseline <= cap
        listing = httpx.get(server.url + "/v1/models").json()["data"]
    try:
        assert list(models.events) == [("load", "big")] + lru_events(routed, 2, ["big"])
        assert mx.get_peak_memory() - models.baseline <= cap
        states = {m["id"]: m["state"] for m in listing}
        assert sorted(n for n, s in states.items() if s == "loaded") == sorted(models.loaded())
        assert {m["id"]: m["requests"] for m in listing} == {n: routed.count(n) for n in SIZES}
        for resident in models.residents:  # unloading gives back what loading took
            if resident.stats.unloads:
                assert resident.stats.freed_memory >= 0.9 * resident.stats.load_memory > 0
    finally:
        models.close()


def test_a_request_for_another_model_waits_for_the_running_answer_then_the_switch_answers_both(model_dirs):
    """Under a cap that holds one model at a time, a request for the other model arrives while
    an answer is being written: the busy model is unloaded only once that answer is done (the
    moment its generation thread is tidying up), and then the other loads; every answer is a
    200, in turn, five times over, and MLX's peak stays under the cap."""
    import mlx.core as mx

    sizes = reservations(model_dirs)
    cap = sizes["big"] + sizes["small"] // 2
    models = make_models(settings_for(model_dirs, cap=cap, max_output_tokens=64))
    order = ["big", "small", "big", "small", "big", "small"]

    async def run(url: str):
        answers = []
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for running, arriving in zip(order, order[1:]):
                body = {"model": running, "max_tokens": 48, "messages": USER}
                first = asyncio.ensure_future(http.post("/v1/messages", json=body))
                while models.route(running).users == 0:  # the answer is being written
                    await asyncio.sleep(0.005)
                second = await http.post("/v1/messages", json={**body, "model": arriving, "max_tokens": 2})
                answers += [await first, second]
        return answers

    with LiveServer(create_app(settings_for(model_dirs, cap=cap, max_output_tokens=64), models=models)) as server:
        for _ in range(400):
            if models.loaded() == ["big"]:
                break
            threading.Event().wait(0.05)
        mx.reset_peak_memory()
        answers = asyncio.run(run(server.url))
        peak = mx.get_peak_memory() - models.baseline
    models.close()
    assert [(r.status_code, r.json().get("type")) for r in answers] == [(200, "message")] * 10
    switches = [e for e in list(models.events)[1:]]
    assert switches == [event for a, b in zip(order, order[1:]) for event in (("unload", a), ("load", b))]
    assert peak <= cap


def test_a_pinned_model_stays_loaded_while_the_others_take_turns(model_dirs):
    cap = cap_for_two(model_dirs)
    models = make_models(settings_for(model_dirs, cap=cap, pinned=("small",)))
    with LiveServer(create_app(settings_for(model_dirs, cap=cap, pinned=("small",)), models=models)) as server:
        client = sdk(server.url)
        for model in ["mid", "big", "small", "mid", "big", "mid"]:
            answered(client, model)
            states = {m["id"]: m["state"] for m in httpx.get(server.url + "/v1/models").json()["data"]}
            assert states["small"] == "loaded"
            assert states[model] == "loaded"
    models.close()
    assert ("unload", "small") not in models.events
    assert models.events.count(("unload", "mid")) >= 2 and models.events.count(("unload", "big")) >= 2


def test_a_model_too_big_for_the_cap_is_a_400_the_client_does_not_retry_and_the_others_serve(model_dirs):
    sizes = reservations(model_dirs)
    cap = (sizes["mid"] + sizes["big"]) // 2  # room for mid or small, not for big even alone
    assert sizes["mid"] < cap < sizes["big"]
    models = make_models(settings_for(model_dirs, cap=cap))
    with LiveServer(create_app(settings_for(model_dirs, cap=cap), models=models)) as server:
        response = httpx.post(server.url + "/v1/messages", json={"model": "big", "max_tokens": 8, "messages": USER},
                              timeout=30)
        health = httpx.get(server.url + "/health")
        listing = {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}
        answered(sdk(server.url), "small")
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk(server.url).messages.create(model="claude-opus-4-8", max_tokens=8, messages=USER)
    models.close()
    assert response.status_code == 400 and response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("model big needs about") and "memory cap" in error["message"]
    assert "memory cap" in caught.value.message
    assert listing["big"]["state"] == "failed" and listing["small"]["state"] in ("loaded", "not_loaded")
    assert health.status_code == 503 and health.json()["status"] == "error"  # the default model cannot serve


def test_each_request_is_trimmed_with_the_tier_window_and_tokenizer_of_its_model(model_dirs):
    tables = [ModelSettings(model=str(model_dirs["small"]), alias="small", tier="small", context_window=2048),
              ModelSettings(model=str(model_dirs["big"]), alias="big", tier="large", context_window=4096)]
    settings = ServerSettings(models=tables, memory_cap=10**12, max_output_tokens=16)
    recorder = TrimRecorder()
    models = make_models(settings)
    with LiveServer(create_app(settings, models=models, pipeline=trimkit.Pipeline(plugins=[recorder]))) as server:
        client = sdk(server.url)
        for model in ["claude-haiku-4-5", "claude-opus-4-8", "small"]:
            answered(client, model)
        counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=USER).input_tokens
        metrics = httpx.get(server.url + "/metrics").text
    models.close()
    generated = {line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith("trimkit_output_tokens_total{")}
    assert set(generated) == {"small", "big"} and min(generated.values()) >= 1  # counted under the routed model
    seen = [(r.profile.name, r.profile.tier, r.profile.context_window) for r in recorder.results]
    assert seen == [("small", "small", 2048), ("big", "large", 4096), ("small", "small", 2048), ("small", "small", 2048)]
    small = next(r for r in models.residents if r.name == "small").backend
    assert recorder.results[0].profile.tokenizer is small.profile.tokenizer
    assert counted == recorder.results[-1].carry.budget.prompt_tokens


def test_one_models_long_answer_does_not_hold_up_another_model(model_dirs, tmp_path):
    """Each model has its own generation slot: a short request to one model is answered while
    another model is still writing a long answer (which never ends on its own)."""
    from trimkit.testing.tinymodel import build_tiny_model

    endless = build_tiny_model(tmp_path / "endless", eos_bias=-30.0, seed=5)
    tables = [ModelSettings(model=str(endless), alias="endless", context_window=16_384),
              ModelSettings(model=str(model_dirs["small"]), alias="quick", context_window=WINDOW)]
    settings = ServerSettings(models=tables, memory_cap=10**12)
    models = make_models(settings)

    async def run(url: str):
        client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=120)
        async with client.messages.stream(model="endless", max_tokens=16_000, messages=USER) as stream:
            events = stream.__aiter__()
            while (await events.__anext__()).type != "content_block_delta":  # the long answer has begun
                pass
            quick = await client.messages.create(model="quick", max_tokens=4, messages=USER)
            still_writing = not models.route("endless").backend.wait_idle(timeout=0)
        return quick, still_writing

    with LiveServer(create_app(settings, models=models)) as server:
        quick, still_writing = asyncio.run(run(server.url))
    models.close()
    assert quick.stop_reason in ("end_turn", "max_tokens") and still_writing


def test_requests_wait_for_a_loading_model_and_the_queue_beyond_is_a_529():
    gate = threading.Event()
    models, meter, clock = stand_in_set({"big": 60, "small": 30}, cap=100, gates={"small": gate})
    settings = ServerSettings(max_queue=1, ping_interval=0.2)
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": USER}

    async def run(url: str):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            waiting = [asyncio.ensure_future(http.post("/v1/messages", json=body)) for _ in range(2)]
            while models.residents[1].stats.requests < 2:
                await asyncio.sleep(0.01)
            refused = await http.post("/v1/messages", json=body)
            gate.set()
            return refused, await asyncio.gather(*waiting)

    with LiveServer(create_app(settings, models=models)) as server:
        refused, done = asyncio.run(run(server.url))
    assert refused.status_code == 529 and refused.headers["x-should-retry"] == "true"
    assert [r.status_code for r in done] == [200, 200]
    assert [r.json()["content"][0]["text"] for r in done] == ["ok", "ok"]
    assert models.residents[1].stats.loads == 1 and meter.peak <= 100
