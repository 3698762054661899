"""Without a key, only requests a local program would send: web pages cannot reach the model."""

from __future__ import annotations

import httpx
import pytest

from trimkit.server.local_only import host_name

from tests.support.servers import replay_backend, replay_server

BODY = b'{"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def open_server():
    backend = replay_backend(["ok"], loop=True)
    with replay_server(backend=backend) as live:
        yield live, backend


@pytest.fixture(scope="module")
def keyed_server():
    with replay_server(backend=replay_backend(["ok"], loop=True), api_key="k") as live:
        yield live


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_cross_site_simple_post_is_refused_before_it_reaches_the_model(open_server, content_type):
    live, backend = open_server
    headers = {"origin": "https://evil.example"} | ({"content-type": content_type} if content_type else {})
    response = httpx.post(live.url + "/v1/messages", content=BODY, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "permission_error"
    without_origin = httpx.post(live.url + "/v1/messages", content=BODY,
                                headers={"content-type": content_type} if content_type else {})
    assert without_origin.status_code == 415, without_origin.text
    assert "application/json" in without_origin.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/v1/messages/count_tokens"])
def test_a_rebound_dns_name_gets_nothing(open_server, path):
    live, _ = open_server
    method = "POST" if "count" in path else "GET"
    response = httpx.request(method, live.url + path, content=BODY if method == "POST" else None,
                             headers={"host": "rebind.evil.example:8787", **JSON})
    assert response.status_code == 403
    assert "rebind.evil.example" in response.json()["error"]["message"]
    assert "replay-model" not in response.text


@pytest.mark.parametrize("host", ["localhost:8787", "127.0.0.1", "[::1]:9", "LOCALHOST.", "app.localhost:1"])
def test_loopback_names_and_local_origins_are_served(open_server, host):
    live, _ = open_server
    response = httpx.post(live.url + "/v1/messages", content=BODY,
                          headers={"host": host, "origin": "http://localhost:3000", **JSON})
    assert response.status_code == 200, response.text


def test_json_with_a_charset_and_the_sdks_own_requests_are_served(open_server):
    live, _ = open_server
    response = httpx.post(live.url + "/v1/messages", content=BODY,
                          headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200


def test_with_a_key_any_host_and_content_type_is_served(keyed_server):
    response = httpx.post(keyed_server.url + "/v1/messages", content=BODY,
                          headers={"x-api-key": "k", "host": "gpu-box.lan", "content-type": "text/plain"})
    assert response.status_code == 200, response.text


def test_a_405_names_the_methods_allowed(open_server):
    live, _ = open_server
    response = httpx.delete(live.url + "/v1/messages")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"POST"}
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_host_names_are_read_as_browsers_write_them():
    assert host_name("[::1]:8787") == "::1"
    assert host_name("Example.COM.:80") == "example.com"
    assert host_name("localhost") == "localhost"
