"""Thousands of short turns are trimmed to the window, not refused: each message's template tokens count."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def mlx_backend(tiny_model_dir):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir)).wait_ready(120)
    yield backend
    backend.close()


def conversation(turns: int) -> list[dict]:
    messages = []
    for i in range(turns // 2):
        messages += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return messages + [{"role": "user", "content": "and the last question"}]


def test_the_template_tokens_around_a_message_are_measured_from_the_template(mlx_backend):
    one = [{"role": "user", "content": "x"}]
    three = one + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "x"}]
    per_message = (mlx_backend.count_tokens(three) - mlx_backend.count_tokens(one)) / 2
    assert mlx_backend.profile.message_tokens >= per_message - mlx_backend.profile.count_tokens("x")
    assert mlx_backend.profile.message_tokens > 3  # more than the estimate this model's template would be given


@pytest.mark.parametrize("turns", [3000, 8000])
def test_thousands_of_short_turns_are_trimmed_to_fit_the_window(mlx_backend, turns):
    from trimkit.testing import live_app

    window = 16_384
    with live_app("mlx", mlx_backend, context_window=window) as live:
        answer = httpx.post(live.url + "/v1/messages", timeout=300, json={
            "model": "claude-x", "max_tokens": 5, "messages": conversation(turns)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["input_tokens"] < window
