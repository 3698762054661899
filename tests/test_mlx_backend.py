import asyncio
import importlib
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("mlx_lm")

from trimkit.backends.base import BackendError, Finished, GenerationParams, Readiness, TextDelta
from trimkit.backends.locate import ModelNotFoundError
from trimkit.backends.mlx import MLXBackend
from trimkit.backends.prompt_cache import common_prefix_length

from tests.fixtures.hardening import probed_mlx_backend, served_jobs

SYSTEM = "You are a careful assistant. Answer briefly and cite the file you used."
GREEDY = dict(temperature=0.0)


def chat(user: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def collect(backend, messages, **params):
    """All events of one generation; greedy unless told otherwise."""
    params = {"max_tokens": 8, **GREEDY, **params}

    async def run():
        return [event async for event in backend.generate(messages, GenerationParams(**params))]

    return asyncio.run(run())


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def endless(backend) -> GenerationParams:
    """Parameters for a generation that streams text until it is stopped."""
    backend.tokenizer.eos_token_ids = set()
    return GenerationParams(max_tokens=100_000, temperature=1.0)


@pytest.fixture
def backend(tiny_model_dir):
    b = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)
    yield b
    b.close()


def test_loads_offline_and_reports_ready(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    b = MLXBackend(str(tiny_model_dir))
    try:
        b.wait_ready(timeout=30)
        status = b.status()
        assert status.ready and status.extra["context_window"] == 65_536
        assert b.profile.name == tiny_model_dir.name and b.profile.tier == "small"
        assert b.profile.tokenizer is not None
    finally:
        b.close()
    assert not b.status().ready


def test_prompt_is_the_chat_template_with_a_generation_prompt(backend):
    messages = chat("hello")
    ids = backend.prompt_tokens(messages)
    expected = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert ids == backend.tokenizer.encode(expected, add_special_tokens=False)
    assert backend.tokenizer.decode(ids) == expected
    assert backend.count_tokens(messages) == len(ids)


def test_a_final_assistant_message_is_continued(backend):
    ids = backend.prompt_tokens(chat("hello") + [{"role": "assistant", "content": "Sure, the answer"}])
    assert backend.tokenizer.decode(ids).endswith("<|im_start|>assistant\nSure, the answer")


def test_generate_streams_text_then_finished_with_token_counts(backend):
    messages = chat("What is 2+2?")
    events = collect(backend, messages, max_tokens=12)
    *deltas, finished = events
    assert all(isinstance(e, TextDelta) for e in deltas) and deltas
    assert isinstance(finished, Finished)
    prompt = backend.prompt_tokens(messages)
    assert finished.input_tokens == len(prompt) and finished.cached_tokens == 0
    assert finished.prefill_tps > 0 and backend.last_prefill_tps == finished.prefill_tps
    # The cache is stored under prompt + generated tokens; the streamed text is their decoding.
    [stored] = backend.prompt_cache.token_lists()
    assert stored[: len(prompt)] == prompt
    generated = stored[len(prompt) :]
    assert len(generated) == finished.output_tokens
    assert text_of(events) == backend.tokenizer.decode(generated)


def test_max_tokens_ends_with_length_after_exactly_that_many_tokens(backend):
    backend.tokenizer.eos_token_ids = set()
    for max_tokens in (1, 5, 17):
        finished = collect(backend, chat(f"count to {max_tokens}"), max_tokens=max_tokens, temperature=1.0)[-1]
        assert (finished.finish, finished.output_tokens) == ("length", max_tokens)


def test_eos_ends_with_stop(backend):
    messages = chat("stop at once")
    collect(backend, messages, max_tokens=1)
    first = backend.prompt_cache.token_lists()[-1][len(backend.prompt_tokens(messages))]
    backend.tokenizer.eos_token_ids = backend.tokenizer.eos_token_ids | {first}
    events = collect(backend, messages, max_tokens=50)
    assert events[-1].finish == "stop" and events[-1].output_tokens == 1
    assert text_of(events) == ""


def test_temperature_zero_is_deterministic_with_and_without_the_cache(tiny_model_dir, backend):
    messages = chat("Write a haiku about caches.")
    first = text_of(collect(backend, messages, max_tokens=16))
    again = collect(backend, messages, max_tokens=16)
    assert again[-1].cached_tokens > 0 and text_of(again) == first
    uncached = MLXBackend(str(tiny_model_dir), max_cache_entries=0).wait_ready(timeout=30)
    try:
        assert text_of(collect(uncached, messages, max_tokens=16)) == first
    finally:
        uncached.close()


def test_next_turn_reuses_the_conversation_so_far(backend):
    turn1 = chat("Read src/app.py and tell me what the main function does. " * 8)
    reply = text_of(collect(backend, turn1, max_tokens=10))
    turn2 = turn1 + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And the tests?"}]
    finished = collect(backend, turn2, max_tokens=4)[-1]
    total = backend.count_tokens(turn2)
    assert finished.cached_tokens + finished.input_tokens == total
    assert finished.cached_tokens >= 0.9 * total


def test_a_shared_beginning_is_reused_exactly(backend):
    a, b = chat("Explain the parser module in detail."), chat("Explain the network layer briefly.")
    collect(backend, a, max_tokens=3)
    finished = collect(backend, b, max_tokens=3)[-1]
    shared = common_prefix_length(np.array(backend.prompt_tokens(a)), np.array(backend.prompt_tokens(b)))
    assert 0 < shared < backend.count_tokens(b)
    assert finished.cached_tokens == shared
    assert finished.input_tokens == backend.count_tokens(b) - shared


def test_byte_cap_evicts_older_conversations(tiny_model_dir):
    probe = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)
    try:
        collect(probe, chat("one"), max_tokens=2)
        one_entry = probe.prompt_cache.nbytes
    finally:
        probe.close()
    b = MLXBackend(str(tiny_model_dir), max_cache_bytes=int(1.5 * one_entry)).wait_ready(timeout=30)
    try:
        first, second = chat("alpha beta gamma delta"), chat("zeta eta theta", system="Other rules.")
        collect(b, first, max_tokens=2)
        collect(b, second, max_tokens=2)
        assert len(b.prompt_cache) == 1 and b.prompt_cache.nbytes <= b.prompt_cache.max_bytes
        finished = collect(b, first, max_tokens=2)[-1]
        assert finished.cached_tokens < 5  # only "<|im_start|>system\n" survives, from the second entry
    finally:
        b.close()


def test_prefill_speed_feeds_the_profile(backend):
    estimate = backend.profile.prefill_tps
    finished = collect(backend, chat("lorem ipsum dolor sit amet " * 40), max_tokens=1)[-1]
    assert finished.input_tokens >= 256
    assert backend.profile.prefill_tps == finished.prefill_tps != estimate
    assert backend.status().extra["prefill_tps"] == round(finished.prefill_tps, 1)


def test_closing_the_stream_early_frees_the_model_within_a_step(tiny_model_dir):
    backend = probed_mlx_backend()(str(tiny_model_dir)).wait_ready(timeout=30)
    messages = chat("Tell me a very long story.")

    async def take_three_then_close():
        stream = backend.generate(messages, endless(backend))
        for _ in range(3):
            await stream.__anext__()
        await stream.aclose()
        return await asyncio.to_thread(backend.wait_idle, 60.0)

    try:
        assert asyncio.run(take_three_then_close())
        [left] = served_jobs(backend)
        assert left["emitted_at_cancel"] is not None
        assert left["emitted"] - left["emitted_at_cancel"] <= 1, "steps ran for a stream that was closed"
        prompt = backend.prompt_tokens(messages)
        [stored] = backend.prompt_cache.token_lists()
        assert 3 <= len(stored) - len(prompt) < 10_000  # decoding stopped long before max_tokens; the cache is kept
        assert collect(backend, chat("next"), max_tokens=4)[-1].finish == "length"
    finally:
        backend.close()


def hold_prefill(monkeypatch, after: int) -> tuple[threading.Event, threading.Event]:
    """Make the next prefill stop once ``after`` prompt tokens are done, until told to go on:
    events (reached, go on). A cancel or an unload then lands mid-prefill on any machine."""
    generate_module = importlib.import_module("mlx_lm.generate")  # mlx_lm.generate is also a function
    reached, go_on = threading.Event(), threading.Event()
    real_stream_generate = generate_module.stream_generate

    def held(*args, prompt_progress_callback, **kwargs):
        def progress(done, total):
            if done >= after and not reached.is_set():
                reached.set()
                go_on.wait(60)
            prompt_progress_callback(done, total)

        return real_stream_generate(*args, prompt_progress_callback=progress, **kwargs)

    monkeypatch.setattr(generate_module, "stream_generate", held)
    return reached, go_on


async def cancel_once_reached(backend: MLXBackend, messages, reached: threading.Event) -> None:
    """Start a request and cancel it, as a departing client does, once a held prefill has ``reached``."""
    async def consume():
        async for _ in backend.generate(messages, GenerationParams(max_tokens=5)):
            pass

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(reached.wait, 60)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_cancelling_during_prefill_stops_between_chunks_and_keeps_the_work(tiny_model_dir, monkeypatch):
    b = MLXBackend(str(tiny_model_dir), prefill_step_size=64).wait_ready(timeout=30)
    messages = chat("a b c d e f g h " * 100)
    prompt = b.prompt_tokens(messages)
    three_chunks_done, cancelled = hold_prefill(monkeypatch, 3 * 64)

    async def cancel_during_prefill():
        await cancel_once_reached(b, messages, three_chunks_done)
        cancelled.set()
        return await asyncio.to_thread(b.wait_idle, 60)

    try:
        assert asyncio.run(cancel_during_prefill())
        [stored] = b.prompt_cache.token_lists()
        assert 3 * 64 <= len(stored) < len(prompt) and len(stored) % 64 == 0
        assert stored == prompt[: len(stored)]
        finished = collect(b, messages, max_tokens=1)[-1]
        assert finished.cached_tokens == len(stored)
    finally:
        b.close()


def test_concurrent_requests_are_served_one_after_another(backend):
    async def both():
        async def one(text):
            return [e async for e in backend.generate(chat(text), GenerationParams(max_tokens=6, **GREEDY))]

        return await asyncio.gather(one("first question"), one("second question"))

    for events in asyncio.run(both()):
        assert events[-1].finish == "length" and events[-1].output_tokens == 6


def test_a_failed_load_is_reported_and_refuses_requests(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    b = MLXBackend(str(broken))
    try:
        with pytest.raises(BackendError, match="failed to load"):
            b.wait_ready(timeout=30)
        status = b.status()
        assert not status.ready and "safetensors" in status.detail
        with pytest.raises(BackendError, match="failed to load"):
            collect(b, chat("hi"))
    finally:
        b.close()


def test_after_close_requests_are_refused(tiny_model_dir):
    b = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)
    b.close()
    assert not b._thread.is_alive()
    with pytest.raises(BackendError, match="closed"):
        collect(b, chat("hi"))


def test_missing_model_id_fails_clearly_without_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"not in the local Hugging Face cache.*hf download trimkit-tests/missing"):
        MLXBackend("trimkit-tests/missing")
    with pytest.raises(ModelNotFoundError, match="no model directory"):
        MLXBackend(str(tmp_path / "nothing-here"))


def test_a_model_in_the_local_hugging_face_cache_loads_by_id(tiny_model_dir, monkeypatch, tmp_path):
    import huggingface_hub.constants

    revision = "0" * 40
    repo = tmp_path / "models--trimkit-tests--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    b = MLXBackend("trimkit-tests/tiny").wait_ready(timeout=30)
    try:
        assert b.profile.name == "trimkit-tests/tiny"
        assert collect(b, chat("hi"), max_tokens=2)[-1].output_tokens == 2
    finally:
        b.close()


def test_closing_the_backend_ends_a_running_generation_with_an_error(tiny_model_dir):
    b = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)

    async def generate_until_closed():
        stream = b.generate(chat("go on forever"), endless(b))
        await stream.__anext__()
        closing = asyncio.create_task(asyncio.to_thread(b.close))
        with pytest.raises(BackendError, match="closed"):
            async for _ in stream:
                pass
        await closing

    asyncio.run(asyncio.wait_for(generate_until_closed(), 60))
    assert not b._thread.is_alive()


def test_unload_while_a_cancelled_request_is_still_prefilling_waits_for_it_then_frees_mlx_memory(
        tiny_model_dir, monkeypatch):
    """A server of several models unloads a model once no request holds it; a request whose
    client went away may still be on the generation thread (until its next chunk or step).
    Unloading then waits for it instead of refusing, and gives MLX's memory back."""
    import mlx.core as mx

    base = mx.get_active_memory()
    b = MLXBackend(str(tiny_model_dir), prefill_step_size=64).wait_ready(timeout=30)
    loaded = mx.get_active_memory() - base
    messages = chat("a b c d e f g h " * 100)
    in_prefill, let_go = hold_prefill(monkeypatch, 64)

    async def cancel_then_unload():
        await cancel_once_reached(b, messages, in_prefill)
        unloading = asyncio.ensure_future(asyncio.to_thread(b.unload))
        await asyncio.sleep(0.2)
        waited = not unloading.done()  # the prefill is held: unload cannot have finished
        let_go.set()
        await unloading
        return waited

    try:
        assert asyncio.run(cancel_then_unload())
        assert b.status().state is Readiness.UNLOADED and b.memory_bytes() == 0
        assert loaded > 0 and mx.get_active_memory() - base <= 0.05 * loaded
        b.load()
        assert collect(b.wait_ready(timeout=30), chat("again"), max_tokens=3)[-1].finish == "length"
    finally:
        b.close()
