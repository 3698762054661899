"""Local means local: loopback by default, a key off loopback, keys compared in constant time,
no prompt text in the logs, and a full request that works with no network but loopback."""

from __future__ import annotations

import hmac
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hardening import base_request, profile, serve
from trimkit.backends.base import BackendError, TextDelta
from trimkit.backends.replay import ReplayBackend
from trimkit.cli.main import main
from trimkit.server import ServerSettings
from trimkit.testing import spawn_server, stop_server

MARKER = "zq7-PRIVATE-PROMPT-MARKER-41x"


@pytest.fixture
def isolated(no_user_config):
    """A replay script in an empty home: no config file or TRIMKIT_* variable of the machine's leaks in."""
    script = no_user_config / "script.json"
    script.write_text(json.dumps(["fine"] * 20))
    return script


# --------------------------------------------------------------------------- binding


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_serve_refuses_a_non_loopback_bind_without_a_key(isolated, capsys, host):
    code = main(["serve", "--host", host, "--backend", "replay", "--script", str(isolated)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"refusing to listen on {host} without an API key" in err and "--api-key" in err


def test_serve_refuses_a_host_from_the_environment_too(isolated, capsys, monkeypatch):
    monkeypatch.setenv("TRIMKIT_HOST", "0.0.0.0")
    assert main(["serve", "--backend", "replay", "--script", str(isolated)]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_the_trimkit_command_exits_2_with_the_reason(isolated):
    done = subprocess.run(
        [sys.executable, "-m", "trimkit.cli", "serve", "--host", "0.0.0.0", "--backend", "replay",
         "--script", str(isolated)],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in done.stderr
    assert "Traceback" not in done.stderr


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` in this network namespace."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:] if table.exists() else []:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_serve_listens_on_loopback_only_by_default(isolated):
    assert ServerSettings().host == "127.0.0.1"
    proc, url = spawn_server(["--backend", "replay", "--script", str(isolated)], cwd=isolated.parent,
                             env={"HOME": str(isolated.parent)})
    try:
        port = int(url.rsplit(":", 1)[1])
        addresses = listening_addresses(port)
    finally:
        stop_server(proc)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, and nothing on 0.0.0.0 or ::


# --------------------------------------------------------------------------- keys


def test_keys_are_compared_with_hmac_compare_digest(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    backend = ReplayBackend(["one", "two"], profile=profile())
    with serve(backend, api_key="s3cret") as live:
        right = httpx.post(live.url + "/v1/messages", json=base_request(), headers={"x-api-key": "s3cret"})
        bearer = httpx.post(live.url + "/v1/messages", json=base_request(), headers={"authorization": "Bearer s3cret"})
        short = httpx.post(live.url + "/v1/messages", json=base_request(), headers={"x-api-key": "s"})
        wrong = httpx.post(live.url + "/v1/messages", json=base_request(), headers={"x-api-key": "s3creT"})
    assert (right.status_code, bearer.status_code, short.status_code, wrong.status_code) == (200, 200, 401, 401)
    assert calls == [(b"s3cret", b"s3cret"), (b"s3cret", b"s3cret"), (b"s", b"s3cret"), (b"s3creT", b"s3cret")]


# --------------------------------------------------------------------------- logs


def requests_carrying_the_marker() -> list[dict]:
    tool = {"name": "Probe", "description": f"tool {MARKER}", "input_schema": {
        "type": "object", "properties": {"q": {"type": "string", "description": MARKER}}}}
    user = [{"role": "user", "content": f"please remember {MARKER}"}]
    return [
        base_request(messages=user),
        base_request(messages=user, stream=True, system=f"system {MARKER}", tools=[tool]),
        base_request(messages=user, max_tokens="not a number"),
        base_request(messages=[{"role": "user", "content": [{"type": "text", "text": MARKER, "bad": {"x": MARKER}}]}],
                     temperature=7),
        {"model": "claude-x", "messages": user},
    ]


def test_a_debug_log_never_holds_prompt_text(isolated):
    proc, url = spawn_server(["--backend", "replay", "--script", str(isolated), "--log-level", "debug"],
                             cwd=isolated.parent, env={"HOME": str(isolated.parent)})
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            statuses = [client.post("/v1/messages", json=body).status_code for body in requests_carrying_the_marker()]
            statuses.append(client.post("/v1/messages/count_tokens", json=requests_carrying_the_marker()[0]).status_code)
    finally:
        output = stop_server(proc)
    assert statuses == [200, 200, 400, 400, 400, 200]
    assert '"POST /v1/messages HTTP/1.1" 200' in output  # the debug log was on and did log these requests
    assert MARKER not in output


class FailingAfterAChunk(ReplayBackend):
    async def generate(self, messages, params):
        yield TextDelta("partial ")
        if "fail hard" in messages[-1]["content"]:
            raise RuntimeError("unexpected failure")
        raise BackendError("the model crashed")


def test_log_records_never_hold_prompt_text_even_when_generation_fails(caplog):
    caplog.set_level(logging.DEBUG)
    backend = FailingAfterAChunk([], profile=profile())
    with serve(backend) as live:
        for body in requests_carrying_the_marker():
            httpx.post(live.url + "/v1/messages", json=body, timeout=30)
        for stream in (True, False):
            messages = [{"role": "user", "content": f"fail hard {MARKER}"}]
            httpx.post(live.url + "/v1/messages", json=base_request(messages=messages, stream=stream), timeout=30)
    assert any(record.name == "trimkit.server" for record in caplog.records)  # failures were logged
    for record in caplog.records:
        assert MARKER not in record.getMessage()
        assert MARKER not in (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")


# --------------------------------------------------------------------------- no network


INSIDE = textwrap.dedent('''
    import json, socket, sys
    from tests.support.clients import sdk
    from trimkit.testing import spawn_server, stop_server

    interfaces = sorted(name for _, name in socket.if_nameindex())
    proc, url = spawn_server(["--model", sys.argv[1]], env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    try:
        client = sdk(url)
        message = client.messages.create(model="claude-opus-4-8", max_tokens=8,
                                         messages=[{"role": "user", "content": "hello"}])
        with client.messages.stream(model="claude-opus-4-8", max_tokens=8,
                                    messages=[{"role": "user", "content": "hello again"}]) as stream:
            streamed = stream.get_final_message()
    finally:
        stop_server(proc)
    print(json.dumps({"interfaces": interfaces, "stop_reason": message.stop_reason,
                      "output_tokens": message.usage.output_tokens,
                      "streamed_output_tokens": streamed.usage.output_tokens}))
''')


def test_the_server_answers_a_full_request_in_a_namespace_with_only_loopback(tiny_model_dir, tmp_path):
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn is not permitted on this machine: {probe.stderr.strip()}")
    if not Path(ip).exists():
        pytest.skip("ip (iproute2) is not installed, so loopback cannot be brought up in the namespace")
    script = tmp_path / "inside.py"
    script.write_text(INSIDE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
    env = {k: v for k, v in env.items() if not k.startswith("TRIMKIT_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    done = subprocess.run(
        [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"', sys.executable, str(script),
         str(tiny_model_dir)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["interfaces"] == ["lo"]
    assert result["stop_reason"] in ("end_turn", "max_tokens") and result["output_tokens"] >= 1
    assert result["streamed_output_tokens"] >= 1
