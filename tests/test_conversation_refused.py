"""A conversation the model's chat template cannot render is the client's 400, never a 500."""

from __future__ import annotations

import json
import shutil

import httpx
import jinja2
import pytest

from trimkit.chat_template import ChatTemplate, TemplateTraits
from trimkit.errors import ConversationError
from trimkit.render import Chat

EMPTY = {
    "an empty assistant turn alone": [{"role": "assistant", "content": ""}],
    "an assistant turn of no blocks": [{"role": "assistant", "content": []}],
    "an empty system message alone": [{"role": "system", "content": ""}],
    "empty system blocks": [{"role": "system", "content": [{"type": "text", "text": ""}]}],
    "an empty system message, then an empty assistant turn": [
        {"role": "system", "content": ""}, {"role": "assistant", "content": " "}],
}


def render_refusing_two_users(messages, **_):
    roles = [m["role"] for m in messages]
    if any(a == b == "user" for a, b in zip(roles, roles[1:])):
        raise jinja2.TemplateError("Conversation roles must alternate user/assistant/user/assistant/...")
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def test_the_template_refusing_a_conversation_is_a_conversation_error():
    template = ChatTemplate(render_refusing_two_users, TemplateTraits())
    with pytest.raises(ConversationError, match="roles must alternate"):
        template.text(Chat([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]))
    with pytest.raises(ConversationError, match="nothing is left"):
        template.text(Chat([{"role": "assistant", "content": "  "}]))
    assert template.text(Chat([{"role": "user", "content": "a"}])) == "<user>a"


@pytest.fixture(scope="module")
def mlx_server(tiny_model_dir, tmp_path_factory):
    """trimkit on the tiny model, with a chat template that refuses any message saying "forbidden"."""
    from trimkit.backends.mlx import MLXBackend
    from trimkit.testing import live_app

    model = tmp_path_factory.mktemp("strict-template") / "model"
    shutil.copytree(tiny_model_dir, model)
    config_file = model / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = (
        "{% for m in messages %}{% if 'forbidden' in m.content %}"
        "{{ raise_exception('this model does not take the word forbidden') }}{% endif %}"
        "<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    config_file.write_text(json.dumps(config))
    backend = MLXBackend(str(model)).wait_ready(120)
    try:
        with live_app("mlx", backend) as live:
            yield live
    finally:
        backend.close()


@pytest.mark.parametrize("case", EMPTY)
@pytest.mark.parametrize("route", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_conversation_empty_once_rendered_is_a_400(mlx_server, case, route, stream):
    response = httpx.post(mlx_server.url + route, timeout=60, json={
        "model": "claude-x", "max_tokens": 5, "stream": stream, "messages": EMPTY[case]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "empty" in response.json()["error"]["message"]


def test_a_conversation_the_template_refuses_is_a_400_that_says_why(mlx_server):
    for route in ("/v1/messages", "/v1/messages/count_tokens"):
        refused = httpx.post(mlx_server.url + route, timeout=60, json={
            "model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "a forbidden word"}]})
        assert refused.status_code == 400, refused.text
        assert "does not take the word forbidden" in refused.json()["error"]["message"]
    fine = httpx.post(mlx_server.url + "/v1/messages", timeout=60, json={
        "model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "an allowed word"}]})
    assert fine.status_code == 200
