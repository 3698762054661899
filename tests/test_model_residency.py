"""Which models are in memory: loading on demand, LRU eviction under the cap, pinning, idle unloading.

Stand-in models (tests/support/models.py) count their bytes in a shared meter, so every
test can also check that the meter (what would be MLX's counter) never passes the cap.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.support.models import Clock, stand_in_set as model_set
from trimkit.backends.base import Readiness
from trimkit.backends.residency import ModelSet, ModelState, ModelTooBig
from trimkit.errors import BackendError


async def use(models: ModelSet, name: str, clock: Clock | None = None) -> None:
    """One request on ``name``: wait for the model, then give it back."""
    lease = models.lease(models.route(name))
    await lease.ready()
    if clock is not None:
        clock.now += 1
    lease.release()


def test_requests_load_models_on_demand_and_the_least_recently_used_idle_one_makes_room():
    async def run():
        models, meter, clock = model_set({"a": 40, "b": 30, "c": 50}, cap=100)
        for name in ["a", "b", "a", "c", "b", "a", "a", "c"]:
            await use(models, name, clock)
            assert meter.active <= 100
        return models, meter

    models, meter = asyncio.run(run())
    assert list(models.events) == [
        ("load", "a"), ("load", "b"),
        ("unload", "b"), ("load", "c"),  # b was used before a's second turn
        ("unload", "a"), ("load", "b"),  # a, then c, then b: a is the oldest
        ("unload", "c"), ("load", "a"),
        ("unload", "b"), ("load", "c"),
    ]
    assert meter.peak <= 100
    assert {r.name: (r.stats.requests, r.stats.loads, r.stats.unloads) for r in models.residents} == {
        "a": (4, 2, 1), "b": (2, 2, 2), "c": (2, 2, 1)}


def test_a_pinned_model_stays_while_the_others_take_turns():
    async def run():
        models, meter, clock = model_set({"a": 30, "b": 40, "c": 50}, cap=100, pinned=("a",))
        await models.preload()
        for name in ["b", "c", "b", "a", "c", "b"]:
            await use(models, name, clock)
            assert "a" in models.loaded() and meter.active <= 100
        return models

    models = asyncio.run(run())
    assert ("unload", "a") not in models.events
    assert models.events.count(("load", "a")) == 1


def test_a_busy_model_is_unloaded_only_when_its_requests_are_done_and_takes_none_meanwhile():
    async def run():
        models, meter, clock = model_set({"a": 60, "b": 60}, cap=100)
        first = models.lease(models.route("a"))
        await first.ready()
        waiting_b = asyncio.ensure_future(use(models, "b", clock))
        await asyncio.sleep(0.05)
        assert not waiting_b.done() and models.loaded() == ["a"]
        assert models.route("a").draining
        second = models.lease(models.route("a"))  # arrives while a drains: it waits for a to come back
        assert not second.admitted
        waiting_a = asyncio.ensure_future(second.ready())
        first.release()
        await waiting_b
        await waiting_a
        assert models.loaded() == ["a"] and second.admitted
        second.release()
        return models, meter

    models, meter = asyncio.run(run())
    assert list(models.events) == [("load", "a"), ("unload", "a"), ("load", "b"), ("unload", "b"), ("load", "a")]
    assert meter.peak <= 100


def test_many_requests_for_a_model_share_one_load_and_a_request_that_leaves_does_not_stop_it():
    async def run():
        gate = threading.Event()
        models, meter, clock = model_set({"a": 10, "b": 10}, cap=100, gates={"b": gate})
        leases = [models.lease(models.route("b")) for _ in range(5)]
        waits = [asyncio.ensure_future(lease.ready()) for lease in leases]
        await asyncio.sleep(0.05)
        assert models.route("b").state is ModelState.LOADING
        waits[0].cancel()  # its client went away
        gate.set()
        await asyncio.gather(*waits[1:])
        return models, leases

    models, leases = asyncio.run(run())
    assert models.route("b").stats.loads == 1 and models.route("b").state is ModelState.LOADED
    assert models.route("b").users == 4 and not leases[0].admitted


def test_a_model_too_big_for_the_cap_is_a_lasting_400_and_nothing_is_unloaded_for_it():
    async def run():
        models, meter, clock = model_set({"a": 40, "huge": 150}, cap=100)
        await use(models, "a")
        with pytest.raises(ModelTooBig) as caught:
            await use(models, "huge")
        return models, caught.value

    models, error = asyncio.run(run())
    assert (error.status, error.error_type, error.lasting) == (400, "invalid_request_error", True)
    assert "model huge needs about" in str(error) and "memory cap" in str(error)
    assert models.route("huge").state is ModelState.FAILED
    assert list(models.events) == [("load", "a")]


def test_a_model_that_fits_alone_but_not_beside_the_pinned_ones_is_refused():
    async def run():
        models, meter, clock = model_set({"a": 60, "b": 50}, cap=100, pinned=("a",))
        await models.preload()
        with pytest.raises(ModelTooBig, match="beside the pinned models \\(a\\)"):
            await use(models, "b")
        return models

    assert asyncio.run(run()).loaded() == ["a"]


def test_a_model_that_fails_to_load_is_a_lasting_error_and_the_others_still_serve():
    async def run():
        models, meter, clock = model_set({"a": 10, "broken": 10}, cap=100, broken=("broken",))
        with pytest.raises(BackendError) as caught:
            await use(models, "broken")
        await use(models, "a")
        return models, caught.value

    models, error = asyncio.run(run())
    assert error.lasting and "the files are damaged" in str(error)
    assert models.route("broken").state is ModelState.FAILED and models.loaded() == ["a"]


def test_a_model_nobody_used_for_the_idle_time_is_unloaded_but_not_a_pinned_or_busy_one():
    async def run():
        models, meter, clock = model_set({"a": 10, "b": 10, "c": 10}, cap=100, pinned=("a",), ttl=300)
        await models.preload()
        await use(models, "b")
        busy = models.lease(models.route("c"))
        await busy.ready()
        clock.now += 299
        assert await models.reap() == []
        clock.now += 1
        unloaded = await models.reap()
        busy.release()
        return models, unloaded, meter

    models, unloaded, meter = asyncio.run(run())
    assert unloaded == ["b"] and models.loaded() == ["a", "c"] and meter.active == 20


def test_the_set_reports_loading_until_the_default_model_is_in():
    async def run():
        gate = threading.Event()
        models, meter, clock = model_set({"a": 10, "b": 10}, cap=100, gates={"a": gate})
        before = models.status()
        models.start()
        await asyncio.sleep(0.05)
        during = models.status()
        gate.set()
        for _ in range(200):
            if models.status().ready:
                break
            await asyncio.sleep(0.01)
        after = models.status()
        await models.stop()
        return before, during, after

    before, during, after = asyncio.run(run())
    assert before.state is Readiness.LOADING and during.state is Readiness.LOADING
    assert after.ready and "loaded: a" in after.detail
