"""Two real llama-server processes behind one trimkit (``upstreams``), one killed mid-run.

benchmarks/bench_engines.py runs the same with 200 requests and prints the count.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer
from trimkit.testing.engines import EngineUnavailable, start_llama_server

pytestmark = [pytest.mark.engines, pytest.mark.slow]

REQUESTS = 60
AT_ONCE = 6


def test_requests_keep_being_answered_when_one_of_two_engines_dies(engine_gguf, tmp_path):
    try:
        engines = [start_llama_server(engine_gguf, log_dir=tmp_path), start_llama_server(engine_gguf, log_dir=tmp_path)]
    except EngineUnavailable as exc:
        pytest.skip(f"engine cannot be had on this machine: {exc}")
    results: dict[int, tuple[int, str]] = {}
    after_kill: set[int] = set()
    lock = threading.Lock()
    try:
        settings = ServerSettings(backend="openai", upstreams=[e.url for e in engines], upstream_model="tiny",
                                  upstream_api_key=engines[0].api_key)
        with LiveServer(create_app(settings)) as server:
            def one(index: int) -> None:
                with lock:
                    if not engines[0].alive():
                        after_kill.add(index)
                body = {"model": "claude-x", "max_tokens": 48, "stream": index % 2 == 0,
                        "messages": [{"role": "user", "content": f"request {index}: summarise the parser"}]}
                response = httpx.post(server.url + "/v1/messages", json=body, timeout=120)
                with lock:
                    results[index] = (response.status_code, response.text)
                    if len(results) == REQUESTS // 2 and engines[0].alive():
                        engines[0].kill()

            with ThreadPoolExecutor(AT_ONCE) as pool:
                list(pool.map(one, range(REQUESTS)))
            health = httpx.get(server.url + "/health").json()
    finally:
        for engine in engines:
            engine.stop()

    def answered(status: int, text: str) -> bool:
        return status == 200 and (text.startswith("{") or "event: message_stop" in text)

    failed = {i: r for i, r in results.items() if not answered(*r)}
    assert len(results) == REQUESTS
    assert len(failed) <= AT_ONCE  # only what was in flight on the engine that died
    assert not failed.keys() & after_kill  # everything sent after the kill was answered by the other
    for status, text in failed.values():  # and each failure is a clean Anthropic error
        if status == 200:
            last = text.strip().split("\n\n")[-1]
            assert last.startswith("event: error") and json.loads(last.split("data: ", 1)[1])["type"] == "error"
        else:
            assert json.loads(text)["error"]["type"] in ("api_error", "overloaded_error")
    assert health["detail"] == "1 of 2 upstreams in service"
    assert [u["ready"] for u in health["upstreams"]] == [False, True]
