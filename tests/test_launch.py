"""``trimkit launch claude``: the environment Claude Code gets, the server's lifetime, exit codes."""

from __future__ import annotations

import http.server
import json
import shlex
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.models import fake_model, stand_in_set
from trimkit.backends.replay import ReplayBackend
from trimkit.cli.errors import Exit
from trimkit.cli.main import _split_client_args, main
from trimkit.config import load_config
from trimkit.cli.launch import base_url, output_tokens, pick_model_id, serve_environment, shell_quote
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer, free_port

FAKE_CLAUDE = """#!{python}
import json, os, sys, urllib.error, urllib.request
request = urllib.request.Request(
    os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    data=json.dumps({{"model": os.environ["ANTHROPIC_MODEL"], "max_tokens": 50,
                     "messages": [{{"role": "user", "content": "hi"}}]}}).encode(),
    headers={{"authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"], "content-type": "application/json"}},
)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, answer = response.status, json.load(response)
except urllib.error.HTTPError as exc:
    status, answer = exc.code, exc.read().decode()
with open(os.environ["FAKE_CLAUDE_OUT"], "w") as out:
    json.dump({{"args": sys.argv[1:], "env": dict(os.environ), "status": status, "answer": answer}}, out)
sys.exit(3)
"""
REPLY = "Hello from the replay backend."


@pytest.fixture
def fake_claude(tmp_path, monkeypatch):
    """A ``claude`` that records its arguments and environment, calls the server once, exits 3."""
    binary = tmp_path / "claude"
    binary.write_text(FAKE_CLAUDE.format(python=sys.executable))
    binary.chmod(0o755)
    out = tmp_path / "claude-run.json"
    monkeypatch.setenv("TRIMKIT_CLAUDE_BIN", str(binary))
    monkeypatch.setenv("FAKE_CLAUDE_OUT", str(out))
    return out


@pytest.fixture
def clean_env(no_user_config, monkeypatch):
    """No config file, no TRIMKIT_* or provider switches from the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "CLAUDE_CODE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    return no_user_config


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([REPLY]))
    return path


def exports(text: str) -> dict[str, str]:
    """The ``export NAME='value'`` lines, read the way a POSIX shell reads them."""
    found = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line)[1].partition("=")
            found[name] = value
    return found


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=30)  # refused at once when nothing listens
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- --print-env


def test_print_env_variable_by_variable(clean_env, script, capsys):
    port = free_port()
    code = main(["launch", "claude", "--print-env", "shell", "--backend", "replay", "--script", str(script),
                 "--port", str(port)])
    out = capsys.readouterr().out
    assert code == 0
    assert exports(out) == {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_AUTH_TOKEN": "trimkit",
        "ANTHROPIC_API_KEY": "",
        "ANTHROPIC_MODEL": "replay",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "replay",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "replay",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "replay",
        "ANTHROPIC_SMALL_FAST_MODEL": "replay",
        "CLAUDE_CODE_SUBAGENT_MODEL": "replay",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION": "false",
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        "API_TIMEOUT_MS": "3000000",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "45768",
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": "45768",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4096",
    }
    assert out.splitlines()[2] == "export ANTHROPIC_API_KEY=''"
    assert all(line.startswith("export ") for line in out.splitlines())


def test_print_env_quotes_for_the_shell(clean_env, script, capsys):
    key = "it's a $KEY `x` \\ \"y\""
    main(["launch", "claude", "--print-env", "shell", "--backend", "replay", "--script", str(script),
          "--api-key", key, "--model", "/models/My Model", "--context-window", "65536"])
    out = capsys.readouterr().out
    assert "export ANTHROPIC_AUTH_TOKEN='it'\\''s a $KEY `x` \\ \"y\"'" in out.splitlines()
    shell = subprocess.run(["sh", "-c", out + '\nprintf "%s|%s|%s" "$ANTHROPIC_AUTH_TOKEN" "$ANTHROPIC_MODEL" '
                            '"$CLAUDE_CODE_MAX_CONTEXT_TOKENS"'], capture_output=True, text=True, check=True)
    assert shell.stdout == f"{key}|My Model|78536"


def test_print_env_all_gives_settings_json_and_vscode_snippets(clean_env, script, capsys):
    main(["launch", "claude", "--print-env", "--backend", "replay", "--script", str(script)])
    out = capsys.readouterr().out
    assert main(["launch", "claude", "--print-env", "json", "--backend", "replay", "--script", str(script)]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert main(["launch", "claude", "--print-env", "vscode", "--backend", "replay", "--script", str(script)]) == 0
    vscode = json.loads(capsys.readouterr().out)
    assert settings["env"] == exports(out)
    assert vscode["claudeCode.environmentVariables"] == [{"name": k, "value": v} for k, v in exports(out).items()]
    assert json.dumps(settings, indent=2) in out and json.dumps(vscode, indent=2) in out


def test_print_env_takes_window_and_model_from_a_running_server(clean_env, capsys):
    backend = ReplayBackend([REPLY], profile=ModelProfile(name="Qwen3-Coder-30B-A3B-Instruct-4bit",
                                                          context_window=131_072, tier="medium"))
    with LiveServer(create_app(ServerSettings(backend="replay", api_key="k1"), backend=backend)) as server:
        code = main(["launch", "claude", "--print-env", "shell", "--port", str(server.port), "--api-key", "k1"])
    env = exports(capsys.readouterr().out)
    assert code == 0
    assert env["ANTHROPIC_MODEL"] == env["CLAUDE_CODE_SUBAGENT_MODEL"] == "Qwen3-Coder-30B-A3B-Instruct-4bit"
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "144072"
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "16384"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "k1"


def test_print_env_with_two_models_sends_side_work_and_sub_agents_to_the_small_one(clean_env, tmp_path, capsys):
    small = fake_model(tmp_path / "Qwen2.5-Coder-7B-Instruct-4bit", 4 * 10**6, window=32_768)
    big = fake_model(tmp_path / "Qwen3-Coder-30B-A3B-Instruct-4bit", 17 * 10**6, window=262_144)
    port = free_port()
    code = main(["launch", "claude", "--print-env", "shell", "--models", f"{small},{big}", "--context-window",
                 "65536", "--port", str(port)])
    out = capsys.readouterr()
    env = exports(out.out)
    assert code == 0, out.err
    main_vars = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL")
    small_vars = ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL")
    assert {env[v] for v in main_vars} == {"Qwen3-Coder-30B-A3B-Instruct-4bit"}
    assert {env[v] for v in small_vars} == {"Qwen2.5-Coder-7B-Instruct-4bit"}
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == str(65_536 + 13_000)


def test_print_env_takes_each_familys_model_from_a_running_server(clean_env, capsys):
    models, _, _ = stand_in_set({"big-model": 60, "small-model": 30}, cap=100)
    with LiveServer(create_app(ServerSettings(api_key="k1"), models=models)) as server:
        code = main(["launch", "claude", "--print-env", "shell", "--port", str(server.port), "--api-key", "k1"])
    env = exports(capsys.readouterr().out)
    assert code == 0
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "big-model"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["CLAUDE_CODE_SUBAGENT_MODEL"] == "small-model"


def test_print_env_names_the_fix_when_no_model_is_configured(clean_env, capsys):
    assert main(["launch", "claude", "--print-env", "--port", str(free_port())]) == 2
    assert "pass --model MODEL" in capsys.readouterr().err


def test_a_port_held_by_another_program_is_named(clean_env, capsys):
    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        code = main(["launch", "claude", "--print-env", "--port", str(other.server_port)])
    finally:
        other.shutdown()
    assert code == 1
    assert "not as a trimkit server: choose another port with --port" in capsys.readouterr().err


# ---------------------------------------------------------------- running claude


def test_launch_starts_a_server_runs_claude_and_stops_the_server(clean_env, fake_claude, script, capsys):
    port = free_port()
    code = main(["launch", "claude", "--backend", "replay", "--script", str(script), "--port", str(port),
                 "--", "-p", "create hello.txt", "--allowedTools", "Write", "--", "after"])
    run = json.loads(fake_claude.read_text())
    err = capsys.readouterr().err
    assert code == 3
    assert run["args"] == ["-p", "create hello.txt", "--allowedTools", "Write", "--", "after"]
    assert run["status"] == 200 and run["answer"]["content"] == [{"type": "text", "text": REPLY}]
    env = run["env"]
    assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert env["ANTHROPIC_API_KEY"] == "" and env["ANTHROPIC_AUTH_TOKEN"] == "trimkit"
    assert env["ANTHROPIC_MODEL"] == "replay"
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "213000"  # the replay backend's window, from /health, + 13,000
    assert "CLAUDE_CODE_USE_BEDROCK" not in env
    assert "started trimkit serve" in err and "trimkit: stopped the server\n" in err
    assert not answers(f"http://127.0.0.1:{port}")
    log = Path(err.split("(log: ")[1].split(")")[0])
    assert not log.exists()  # it held only status lines


def test_launch_reuses_a_running_server_and_leaves_it_running(clean_env, fake_claude, capsys):
    backend = ReplayBackend([REPLY], profile=ModelProfile(name="local-model", context_window=65_536, tier="small"))
    with LiveServer(create_app(ServerSettings(backend="replay", api_key="k1"), backend=backend)) as server:
        code = main(["launch", "claude", "--port", str(server.port), "--api-key", "k1", "--", "-p", "hi"])
        still_up = answers(server.url)
    run = json.loads(fake_claude.read_text())
    assert code == 3 and still_up
    assert "already running" in capsys.readouterr().err
    assert run["status"] == 200 and run["answer"]["content"][0]["text"] == REPLY
    assert run["env"]["ANTHROPIC_AUTH_TOKEN"] == "k1"
    assert run["env"]["ANTHROPIC_MODEL"] == "local-model"
    assert run["env"]["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "78536"


def test_a_wrong_api_key_for_a_running_server_is_named(clean_env, fake_claude, capsys):
    backend = ReplayBackend([REPLY])
    with LiveServer(create_app(ServerSettings(backend="replay", api_key="k1"), backend=backend)) as server:
        code = main(["launch", "claude", "--port", str(server.port), "--api-key", "wrong"])
    assert code == 1 and not fake_claude.exists()
    assert "wants another API key: pass --api-key KEY" in capsys.readouterr().err


def test_missing_claude_code_names_the_install_command(clean_env, script, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(clean_env / "empty-bin"))
    port = free_port()
    code = main(["launch", "claude", "--backend", "replay", "--script", str(script), "--port", str(port)])
    assert code == 127
    assert "npm install -g @anthropic-ai/claude-code" in capsys.readouterr().err
    assert not answers(f"http://127.0.0.1:{port}")


@pytest.mark.slow
def test_a_model_that_is_not_here_is_one_line_from_serve_and_launch(clean_env, fake_claude, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(clean_env / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = "mlx-community/not-downloaded-4bit"
    cli = [sys.executable, "-m", "trimkit.cli"]
    serve = subprocess.run([*cli, "serve", "--model", model, "--port", str(free_port())],
                           capture_output=True, text=True, timeout=120)
    launch = subprocess.run([*cli, "launch", "claude", "--model", model, "--port", str(free_port())],
                            capture_output=True, text=True, timeout=120)
    expected = f"{model} is not in the local Hugging Face cache; run: hf download {model}"
    assert serve.returncode == launch.returncode == Exit.MODEL
    assert serve.stderr.splitlines() == [f"trimkit serve: {expected}"]
    assert launch.stderr.splitlines()[-1] == f"trimkit launch: {expected}"
    assert "Traceback" not in serve.stderr + launch.stderr
    assert not fake_claude.exists()


# ---------------------------------------------------------------- the parts


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_shell_quote_reads_back_as_the_same_value(value):
    assert shlex.split(f"export X={shell_quote(value)}") == ["export", f"X={value}"]


def test_client_arguments_are_everything_after_the_first_double_dash():
    argv = ["launch", "claude", "--port", "1", "--", "-p", "x", "--", "y"]
    assert _split_client_args(argv) == (["launch", "claude", "--port", "1"], ["-p", "x", "--", "y"])
    assert _split_client_args(["inspect", "--", "-"]) == (["inspect", "--", "-"], [])


@pytest.mark.parametrize(
    ("ids", "chosen"),
    [
        (["replay"], "replay"),
        (["Qwen3-Coder-4bit", "mlx-community/Qwen3-Coder-4bit"], "Qwen3-Coder-4bit"),
        (["claude-x", "tiny"], "tiny"),
        (["owner/model"], "owner/model"),
    ],
)
def test_the_model_id_is_the_served_name(ids, chosen):
    assert pick_model_id(ids) == chosen


@pytest.mark.parametrize(
    ("window", "cap", "tokens"),
    [(16_384, None, 4_096), (32_768, None, 4_096), (65_536, None, 8_192), (1_000_000, None, 32_000), (65_536, 2_000, 2_000)],
)
def test_output_tokens_leave_room_in_the_window(window, cap, tokens):
    assert output_tokens(window, cap) == tokens


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8787"), ("0.0.0.0", "http://127.0.0.1:8787"), ("::", "http://[::1]:8787"),
     ("localhost", "http://localhost:8787")],
)
def test_base_url_is_where_a_local_client_connects(host, url):
    assert base_url(host, 8787) == url


def test_the_child_server_gets_flag_values_as_variables_and_the_same_file(tmp_path):
    config_file = tmp_path / "trimkit.toml"
    config_file.write_text('backend = "replay"\nport = 9001\n')
    config = load_config(config_file, env={}, overrides={"api_key": "secret", "model_patterns": ["a-*", "b-*"]})
    env = serve_environment(config)
    assert env["TRIMKIT_CONFIG"] == str(config_file)
    assert env["TRIMKIT_API_KEY"] == "secret" and env["TRIMKIT_MODEL_PATTERNS"] == "a-*,b-*"
    assert load_config(env=env).settings == config.settings


def test_serve_download_fetches_only_when_asked_and_fails_in_one_line_when_it_cannot(tmp_path):
    """--download is the one way the server reaches a model hub; offline it is a one-line error."""
    model = "mlx-community/not-downloaded-4bit"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "trimkit.cli", "serve", "--model", model, "--download",
                           "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == Exit.MODEL
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("trimkit serve: ") and f"hf download {model}" in last
    assert "Traceback" not in done.stderr
