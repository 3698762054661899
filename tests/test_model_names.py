"""What anyone may read (/health, /v1/models, errors) names a local model by its directory's name only."""

from __future__ import annotations

import httpx

from trimkit.backends import make_backend
from trimkit.backends.locate import model_label, without_paths
from trimkit.server import ServerSettings
from trimkit.testing import live_app


def test_a_local_directory_is_labelled_by_its_name_and_a_hub_id_as_it_is(tmp_path):
    assert model_label(str(tmp_path / "my-model")) == "my-model"
    assert model_label(str(tmp_path / "my-model") + "/") == "my-model"
    assert model_label("mlx-community/Qwen3-4B-4bit") == "mlx-community/Qwen3-4B-4bit"
    text = f"cannot read {tmp_path}/my-model/config.json"
    assert without_paths(text, str(tmp_path / "my-model")) == "cannot read my-model/config.json"


def test_health_and_models_do_not_show_where_the_model_is_on_disk(tiny_model_dir):
    from trimkit.backends.mlx import MLXBackend

    model = str(tiny_model_dir.resolve())
    backend = MLXBackend(model).wait_ready(120)
    try:
        with live_app("mlx", backend, model=model) as live:
            health = httpx.get(live.url + "/health").text
            models = httpx.get(live.url + "/v1/models").json()
            by_path = httpx.post(live.url + "/v1/messages", timeout=60, json={
                "model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    finally:
        backend.close()
    parent = str(tiny_model_dir.resolve().parent)
    assert parent not in health and parent not in str(models)
    assert tiny_model_dir.name in [m["id"] for m in models["data"]]
    assert by_path.status_code == 200  # asking by the configured path still works


def test_a_model_that_fails_to_load_says_why_without_its_path(tmp_path):
    model = tmp_path / "secret-project" / "broken-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{ not json")
    settings = ServerSettings(backend="mlx", model=str(model))
    with live_app("mlx", make_backend(settings), model=str(model)) as live:
        health = httpx.get(live.url + "/health")
        answer = httpx.post(live.url + "/v1/messages", json={
            "model": "claude-x", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert health.json()["status"] == "error" and "broken-model" in health.json()["detail"]
    assert str(tmp_path) not in health.text and "secret-project" not in health.text
    assert answer.status_code == 500 and str(tmp_path) not in answer.text
