"""Captures: one private directory per request, secrets redacted, rotated, off by default."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import trimkit
from trimkit.server.capture import REDACTED, Capture, Redactor
from trimkit.cli.main import build_parser, main
from trimkit.config import load_config, overrides_from_args
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings
from tests.fixtures.claude_code import first_request
from tests.support.servers import replay_server
from tests.support.sse import streamed_text

ANTHROPIC_KEY = "sk-ant-api03-" + "A1b2C3d4" * 8
FILES = {"original.json", "trimmed.json", "prompt.txt", "response.json", "report.json"}
TURNS = ["Hello from the capture test.", "Streamed answer."]
RESPONSE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {}}


def body_with_secrets(prompt: str = "deploy with my key") -> bytes:
    request = first_request(f"{prompt}: {ANTHROPIC_KEY}")
    request["metadata"]["x-api-key"] = "plain-header-value"
    request["metadata"]["Authorization"] = "Bearer abcdefghijklmnopqrstuvwxyz"
    return json.dumps(request).encode()


def write_one(capture: Capture, prompt: str = "deploy with my key") -> Path:
    body = body_with_secrets(prompt)
    result = trimkit.trim(body, ModelProfile.for_tier("small"))
    return capture.write(body, result, [{"role": "user", "content": f"{prompt} {ANTHROPIC_KEY}"}], RESPONSE)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_capture_holds_five_files_readable_only_by_the_user(tmp_path):
    old = os.umask(0o022)
    try:
        entry = write_one(Capture(tmp_path / "captures"))
    finally:
        os.umask(old)
    assert {p.name for p in entry.iterdir()} == FILES
    assert mode(tmp_path / "captures") == 0o700
    assert mode(entry) == 0o700
    assert {mode(p) for p in entry.iterdir()} == {0o600}
    original = json.loads((entry / "original.json").read_text())
    assert original["model"] == "claude-opus-4-8" and len(original["tools"]) == 25
    report = json.loads((entry / "report.json").read_text())
    assert report["before"]["chars"] > report["after"]["chars"] > 0
    assert [s["name"] for s in report["stages"]][0] == "client_noise"
    assert json.loads((entry / "trimmed.json").read_text())["messages"]


def test_keys_are_redacted_from_every_file(tmp_path):
    entry = write_one(Capture(tmp_path, secrets=["server-side-secret"]))
    for path in entry.iterdir():
        text = path.read_text()
        assert ANTHROPIC_KEY not in text, path.name
        assert "plain-header-value" not in text and "abcdefghijklmnopqrstuvwxyz" not in text, path.name
    original = json.loads((entry / "original.json").read_text())
    assert original["metadata"]["x-api-key"] == REDACTED
    assert original["metadata"]["Authorization"] == REDACTED
    assert f"deploy with my key: {REDACTED}" in (entry / "original.json").read_text()
    assert REDACTED in (entry / "prompt.txt").read_text()


def test_the_servers_own_key_is_redacted_wherever_it_stands_alone():
    redactor = Redactor(["server-side-secret"])
    assert redactor.data({"note": "key server-side-secret here", "n": 3}) == {"note": f"key {REDACTED} here", "n": 3}
    assert redactor.data({"auth": "Bearer server-side-secret", "key": "server-side-secret"}) == {
        "auth": f"Bearer {REDACTED}", "key": REDACTED}
    assert redactor.text("KEY=server-side-secret\n") == f"KEY={REDACTED}\n"


def test_a_short_key_is_not_redacted_inside_other_words():
    """With key ``k``, OpenCode's ``skill`` and ``task`` tools were saved as ``s[redacted]ill``."""
    redactor = Redactor(["k"])
    tools = [{"name": "skill", "description": "Load a skill"}, {"name": "task", "description": "Run a task"}]
    assert redactor.data({"tools": tools}) == {"tools": tools}
    assert redactor.data({"x-session-key": "k", "value": "k"}) == {"x-session-key": REDACTED, "value": REDACTED}
    assert redactor.text("curl -H 'x-api-key: k' http://127.0.0.1") == f"curl -H 'x-api-key: {REDACTED}' http://127.0.0.1"


@given(st.text(alphabet="abcdefghijk-_ \n", max_size=30))
def test_the_key_never_survives_as_a_whole_token_and_nothing_else_changes(text):
    redacted = Redactor(["k"]).text(text)
    assert redacted.replace(REDACTED, "k") == text
    assert not any(word == "k" for word in redacted.replace("\n", " ").split(" "))


KEYS = st.one_of(
    st.from_regex(r"sk-[A-Za-z0-9_-]{16,40}", fullmatch=True),
    st.from_regex(r"hf_[A-Za-z0-9]{20,40}", fullmatch=True),
    st.from_regex(r"ghp_[A-Za-z0-9]{30,40}", fullmatch=True),
    st.from_regex(r"AKIA[0-9A-Z]{16}", fullmatch=True),
)
SURROUNDINGS = st.text(alphabet=" \n.,:;=\"'()[]{}<>", max_size=5)


@given(before=SURROUNDINGS, key=KEYS, after=SURROUNDINGS)
def test_any_key_shaped_string_is_redacted(before, key, after):
    redacted = Redactor().text(before + key + after)
    assert key not in redacted
    assert redacted == before + REDACTED + after


def test_ordinary_text_is_left_alone():
    text = "ask-me-anything sk-short risky-task hf_x AKIA123 bearer of news"
    assert Redactor().text(text) == text


def test_rotation_keeps_the_newest_and_leaves_other_files_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    capture = Capture(tmp_path, keep=3)
    written = [write_one(capture, f"prompt {i}") for i in range(5)]
    assert capture.entries() == written[2:]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "mine").is_dir()


def test_inspect_opens_the_newest_capture(tmp_path, capsys):
    capture = Capture(tmp_path)
    for i in range(3):
        write_one(capture, f"prompt number {i}")
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    shown = json.dumps(json.loads(capsys.readouterr().out)["request"])
    assert "prompt number 2" in shown and "prompt number 1" not in shown


def post(server, request: dict, **extra) -> httpx.Response:
    body = {**request, **extra}
    response = httpx.post(server.url + "/v1/messages", json=body, headers={"x-api-key": ANTHROPIC_KEY}, timeout=30)
    response.raise_for_status()
    return response


def test_the_server_captures_plain_and_streamed_responses(tmp_path):
    directory = tmp_path / "captures"
    request = first_request("what is 2+2")
    with replay_server(TURNS, capture_dir=str(directory), capture_keep=5, api_key=ANTHROPIC_KEY) as server:
        plain = post(server, request, stream=False).json()
        streamed = post(server, request, stream=True).text
    first, second = Capture(directory).entries()
    assert json.loads((first / "response.json").read_text())["content"] == plain["content"]
    assert json.loads((second / "response.json").read_text())["content"] == [
        {"type": "text", "text": streamed_text(streamed)}
    ]
    assert streamed_text(streamed) == "Streamed answer."
    report = json.loads((first / "report.json").read_text())
    assert report["prompt_tokens"] == plain["usage"]["input_tokens"]
    assert "what is 2+2" in (second / "prompt.txt").read_text()
    assert ANTHROPIC_KEY not in "".join(p.read_text() for p in (first / "original.json", second / "original.json"))


def test_nothing_is_written_when_captures_are_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Capture.from_settings(ServerSettings()) is None
    with replay_server(TURNS) as server:
        post(server, first_request(), stream=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--capture", "--capture-dir"])
def test_serve_and_launch_take_capture_as_the_capture_dir_setting(flag, tmp_path):
    for command in (["serve"], ["launch", "claude"]):
        args = build_parser().parse_args([*command, flag, str(tmp_path)])
        config = load_config(env={}, overrides=overrides_from_args(args))
        assert config.settings.capture_dir == str(tmp_path)
        assert config.sources["capture_dir"] == "flag --capture-dir"


def test_the_prompt_of_the_models_own_convention_shows_tools_and_calls():
    from trimkit.render import Chat
    from trimkit.server.capture import chat_text

    chat = Chat([
        {"role": "user", "content": "read /a"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "abcdefghi", "type": "function", "function": {"name": "Read", "arguments": {"file_path": "/a"}}}]},
        {"role": "tool", "tool_call_id": "abcdefghi", "name": "Read", "content": "print(1)"},
    ], tools=[{"type": "function", "function": {"name": "Read", "description": "Read a file.", "parameters": {}}}])
    assert chat_text(chat) == (
        '<|tools|>\n{"type": "function", "function": {"name": "Read", "description": "Read a file.", "parameters": {}}}\n'
        "<|user|>\nread /a\n"
        '<|assistant|>\nReading.\n{"name": "Read", "arguments": {"file_path": "/a"}}\n'
        "<|tool|>\nprint(1)"
    )


SECRETS = {
    "the server's key as an object key": ({"server-side-secret": "value"}, "server-side-secret"),
    "an AWS secret key": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                          "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "an AWS secret key as a field": ({"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"}, "wJalrXUtnFEMI/K7MDENG"),
    "a Google API key": ("key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"),
    "a GCP service account": ({"type": "service_account", "private_key_id": "1a2b",
                               "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"},
                              "MIIEvQIBADANBg"),
    "a JWT": ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
              "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    "a PEM private key in text": ("cat id_rsa\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"
                                  "-----END OPENSSH PRIVATE KEY-----\ndone", "b3BlbnNzaC1rZXk"),
    "a database URL's password": ("DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/shop", "s3cr3t-pw"),
    "a short sk- key": ("OPENAI_API_KEY=sk-abc12345", "sk-abc12345"),
    "an access token field": ({"access_token": "opaque-value-1"}, "opaque-value-1"),
}


@pytest.mark.parametrize("case", SECRETS)
def test_what_the_docs_say_is_redacted_is_redacted(tmp_path, case):
    planted, secret = SECRETS[case]
    body = first_request("deploy")
    body["metadata"]["note"] = planted
    body["messages"][0]["content"].append({"type": "text", "text": json.dumps(planted)})
    raw = json.dumps(body).encode()
    result = trimkit.trim(raw, ModelProfile.for_tier("small"))
    entry = Capture(tmp_path, secrets=["server-side-secret"]).write(
        raw, result, [{"role": "user", "content": json.dumps(planted)}], RESPONSE)
    for path in entry.iterdir():
        assert secret not in path.read_text(), path.name


def test_text_around_secrets_stays_as_it_was():
    redactor = Redactor()
    assert redactor.text("see https://example.com/a@b and sk-learn") == "see https://example.com/a@b and sk-learn"
    assert redactor.text("postgres://app:pw@db/x") == f"postgres://app:{REDACTED}@db/x"
    assert redactor.data({"max_tokens": 5, "input_tokens": 7}) == {"max_tokens": 5, "input_tokens": 7}


def test_an_existing_capture_directory_keeps_its_permissions(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    entry = write_one(Capture(shared))
    assert mode(shared) == 0o755 and mode(entry) == 0o700


def test_a_symbolic_link_is_never_followed_to_change_permissions(tmp_path):
    target = tmp_path / "somewhere-else"
    target.mkdir()
    os.chmod(target, 0o755)
    link = tmp_path / "captures"
    link.symlink_to(target)
    entry = write_one(Capture(link))
    assert mode(target) == 0o755
    assert mode(entry) == 0o700 and entry.parent.resolve() == target.resolve()
