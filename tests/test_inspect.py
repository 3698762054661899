"""``trimkit inspect``: the stage table, tiers, --json, --diff, --show, --model and its errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trimkit import ModelProfile, Pipeline, decode_request
from trimkit.cli.errors import Exit
from trimkit.cli.main import main
from trimkit.measure import Measure
from trimkit.render import prompt_text
from trimkit.resources import plugins_package

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claude-code-request.json"
STAGES = list(plugins_package().BUILTIN)
CORE_TOOLS = {"Read", "Write", "Edit", "Bash", "Glob", "Grep"}
TOTAL = re.compile(
    r"^total: (?P<before>[\d,]+) → (?P<after>[\d,]+) chars \((?P<ratio>[\d.]+)× smaller\), "
    r"(?P<tokens_before>[\d,]+) → (?P<tokens_after>[\d,]+) tokens(?P<estimated> \(estimated\))?, "
    r"[\d.]+ ms, tier (?P<tier>\w+)$",
    re.M,
)


pytestmark = pytest.mark.usefixtures("no_user_config")  # no config of the machine's changes what inspect does


def inspect(capsys, *args: str) -> str:
    assert main(["inspect", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def number(text: str) -> int:
    return int(text.replace(",", ""))


def total_line(out: str) -> re.Match:
    match = TOTAL.search(out)
    assert match, out
    return match


def tools_line(out: str) -> list[str]:
    (line,) = [line for line in out.splitlines() if line.startswith("tools offered to the model: ")]
    return line.split(": ", 1)[1].split(", ")


# ---------------------------------------------------------------- the table


def test_table_lists_every_stage_and_a_total_with_the_ratio(capsys):
    out = inspect(capsys, str(EXAMPLE))
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["stage", "chars", "tokens", "ms"]
    rows = [line.split()[0] for line in lines[2 : 2 + len(STAGES)]]
    assert rows == STAGES
    total = total_line(out)
    before, after = number(total["before"]), number(total["after"])
    assert before > 80_000
    assert after < before / 10
    assert float(total["ratio"]) == pytest.approx(before / after, abs=0.05)
    assert total["estimated"] and total["tier"] == "small"
    assert "billing_header 79" in out


def test_table_numbers_are_the_reports(capsys):
    out = inspect(capsys, str(EXAMPLE))
    report = Pipeline().trim(EXAMPLE.read_bytes(), ModelProfile.for_tier("small")).report
    for stage in report.stages:
        row = next(line for line in out.splitlines() if line.startswith(stage.name + " "))
        assert f"{stage.chars_before:,} → {stage.chars_after:,}" in row
        assert f"{stage.tokens_before:,} → {stage.tokens_after:,}" in row
    total = total_line(out)
    assert (number(total["before"]), number(total["after"])) == (report.before.chars, report.after.chars)
    assert (number(total["tokens_before"]), number(total["tokens_after"])) == (report.before.tokens, report.after.tokens)


def test_tier_changes_the_tools_line(capsys):
    shown = {tier: tools_line(inspect(capsys, str(EXAMPLE), "--tier", tier)) for tier in ("small", "medium", "large")}
    offered = [tool["name"] for tool in json.loads(EXAMPLE.read_text())["tools"]]
    assert set(shown["small"]) == CORE_TOOLS
    assert CORE_TOOLS < set(shown["medium"]) < set(offered)
    assert shown["large"] == offered
    assert total_line(inspect(capsys, str(EXAMPLE), "--tier", "large"))["tier"] == "large"


def test_a_request_without_tools_has_no_tools_line(capsys, tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
    out = inspect(capsys, str(path))
    assert "tools offered" not in out and "system prompt recognised" not in out
    assert total_line(out)["before"] == total_line(out)["after"]


def test_the_table_names_the_agent_whose_system_prompt_was_recognised(capsys):
    out = inspect(capsys, str(EXAMPLE), "--tier", "large")
    assert "system prompt recognised: claude-code" in out.splitlines()


# ---------------------------------------------------------------- --json


def test_json_has_the_documented_keys_and_a_request_that_decodes(capsys):
    data = json.loads(inspect(capsys, str(EXAMPLE), "--json"))
    assert {"before", "after", "stages", "request"} <= set(data)
    expected = Pipeline().trim(EXAMPLE.read_bytes(), ModelProfile.for_tier("small"))
    assert set(data) == set(expected.as_dict())
    assert set(data["before"]) == set(data["after"]) == {"chars", "tokens"}
    assert [s["name"] for s in data["stages"]] == STAGES
    for stage in data["stages"]:
        assert set(stage) == {"name", "chars_before", "chars_after", "tokens_before", "tokens_after", "ms", "removed"}
        assert all(isinstance(v, int) for v in stage["removed"].values())
    assert data["stages"][0]["chars_before"] == data["before"]["chars"]
    assert data["stages"][-1]["chars_after"] == data["after"]["chars"]
    request = decode_request(data["request"])
    assert request == expected.request
    assert request.tools is None


# ---------------------------------------------------------------- --diff and --show


def test_diff_is_a_unified_diff_of_the_prompt(capsys):
    out = inspect(capsys, str(EXAMPLE), "--diff")
    diff = out.splitlines()
    start = diff.index("--- before")
    assert diff[start + 1] == "+++ after"
    assert diff[start + 2].startswith("@@ -1,")
    assert any(line.startswith("-x-anthropic-billing-header:") for line in diff)
    assert not any(line.startswith(("+x-anthropic", " x-anthropic")) for line in diff)
    assert any(line.startswith("+") and "<tool " in line for line in diff[start + 2 :])


def test_show_prints_the_trimmed_prompt(capsys):
    out = inspect(capsys, str(EXAMPLE), "--show")
    prompt = prompt_text(Pipeline().trim(EXAMPLE.read_bytes(), ModelProfile.for_tier("small")).request)
    assert out.endswith("\n\n" + prompt + "\n")
    assert "x-anthropic-billing-header" not in out.split(prompt)[0] + prompt


# ---------------------------------------------------------------- --model


def test_model_dir_gives_exact_token_counts_and_the_models_tier(capsys, tiny_model_dir):
    out = inspect(capsys, str(EXAMPLE), "--model", str(tiny_model_dir))
    total = total_line(out)
    assert total["estimated"] is None
    assert total["tier"] == "small"
    profile = ModelProfile.from_model_dir(tiny_model_dir)
    assert number(total["tokens_before"]) == Measure(profile).request(decode_request(EXAMPLE.read_bytes()))[1]
    estimated = total_line(inspect(capsys, str(EXAMPLE)))
    assert total["tokens_before"] != estimated["tokens_before"]


def test_model_dir_with_a_tier(capsys, tiny_model_dir):
    data = json.loads(inspect(capsys, str(EXAMPLE), "--model", str(tiny_model_dir), "--tier", "large", "--json"))
    assert (data["tier"], data["exact_tokens"]) == ("large", True)


def test_a_directory_that_is_not_a_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(EXAMPLE), "--model", str(tmp_path)]) == Exit.MODEL
    assert capsys.readouterr().err == f"trimkit inspect: {tmp_path} is not a model directory (no config.json)\n"


def test_a_model_with_a_broken_config_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{")
    assert main(["inspect", str(EXAMPLE), "--model", str(tmp_path)]) == Exit.MODEL
    err = capsys.readouterr().err
    assert err.startswith(f"trimkit inspect: cannot read the model in {tmp_path}: ") and err.count("\n") == 1


# ---------------------------------------------------------------- errors and stdin, as a command


def run_cli(*args: str, stdin: bytes = b"", cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "trimkit.cli", "inspect", *args],
        input=stdin, capture_output=True, cwd=cwd, env=env, timeout=60,
    )


def test_stdin_dash_reads_the_request(tmp_path):
    piped = run_cli("-", "--json", stdin=EXAMPLE.read_bytes(), cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr.decode()
    data = json.loads(piped.stdout)
    expected = Pipeline().trim(EXAMPLE.read_bytes(), ModelProfile.for_tier("small"))
    assert decode_request(data["request"]) == expected.request
    assert data["before"] == {"chars": expected.report.before.chars, "tokens": expected.report.before.tokens}


def run_inspect(capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr as the ``trimkit`` command would give them."""
    status = main(["inspect", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_missing_file_is_a_one_line_error_from_the_command(tmp_path):
    done = run_cli(str(tmp_path / "nope.json"), cwd=tmp_path)
    assert done.returncode == Exit.INPUT and done.stdout == b""
    assert done.stderr.decode() == f"trimkit inspect: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "trimkit inspect: cannot read {path}: No such file or directory"),
        (b'{"model": "m", ', "trimkit inspect: not a valid Messages request: invalid JSON body: "),
        (b"", "trimkit inspect: not a valid Messages request: invalid JSON body: "),
        (b"\xff\xfe{", "trimkit inspect: not a valid Messages request: invalid JSON body: "),
        (b"[1, 2]", "trimkit inspect: not a valid Messages request: request body must be a JSON object"),
        (b'{"model": "m", "max_tokens": "ten", "messages": []}', "trimkit inspect: not a valid Messages request: "),
    ],
    ids=["missing", "truncated", "empty", "binary", "array", "wrong-type"],
)
def test_a_bad_file_is_a_one_line_error(capsys, tmp_path, content, message):
    path = tmp_path / "request.json"
    if content is not None:
        path.write_bytes(content)
    status, out, err = run_inspect(capsys, str(path))
    assert status != 0 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(message.format(path=path)), err


def test_a_model_whose_template_renders_tools_shows_the_prompt_as_its_template_writes_it(capsys, family_model):
    out = inspect(capsys, str(EXAMPLE), "--model", str(family_model("qwen3_coder")), "--show")
    line = next(line for line in out.splitlines() if line.startswith("tools offered to the model"))
    assert line.startswith("tools offered to the model (through the model's chat template): ")
    assert set(line.split(": ", 1)[1].split(", ")) == CORE_TOOLS
    assert "<|im_start|>system\n" in out and "\n<tools>\n" in out and "<function>\n<name>Read</name>" in out
    assert out.rstrip().endswith("<|im_start|>assistant")
    assert "<function_calls>" not in out


def test_convention_xml_teaches_trimkits_xml_even_through_such_a_template(capsys, family_model, monkeypatch):
    monkeypatch.setenv("TRIMKIT_CONVENTION", "xml")
    out = inspect(capsys, str(EXAMPLE), "--model", str(family_model("qwen3_coder")), "--show")
    assert tools_line(out) and '<tool name="Read">' in out and "<function_calls>" in out
    assert "<function>\n<name>Read</name>" not in out


def inspect_process(*args: str, stdin=None, max_body_bytes: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``trimkit inspect ARGS`` as a process, so a read that never ends is bounded by ``timeout``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    if max_body_bytes is not None:
        env["TRIMKIT_MAX_BODY_BYTES"] = str(max_body_bytes)
    return subprocess.run([sys.executable, "-m", "trimkit.cli", "inspect", *args], stdin=stdin, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_inspect_refuses_what_is_not_a_regular_file_in_one_line(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in (str(fifo), "/dev/zero"):
        done = inspect_process(source)
        assert done.returncode == Exit.INPUT, done.stderr
        assert done.stderr.strip() == f"trimkit inspect: {source} is not a regular file"


def test_inspect_reads_no_more_than_the_server_would_take(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2000 + b"{}")
    done = inspect_process(str(big), max_body_bytes=1000)
    with open("/dev/zero", "rb") as zeros:
        endless = inspect_process("-", stdin=zeros, max_body_bytes=1_000_000)
    assert done.returncode == endless.returncode == Exit.INPUT
    assert "more than 1000 bytes" in done.stderr and "Traceback" not in endless.stderr


# ---------------------------------------------------------------- --html


def html_report(capsys, *args: str) -> tuple[str, str]:
    assert main(["inspect", *args]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_html_writes_one_self_contained_page_with_the_stages_a_chart_and_the_diff(capsys, tmp_path):
    out_file = tmp_path / "report.html"
    out, err = html_report(capsys, str(EXAMPLE), "--html", str(out_file))
    page = out_file.read_text()
    assert f"report written to {out_file}" in err and total_line(out)
    for stage in STAGES:
        assert f"<td>{stage}</td>" in page
    chart = page[page.index('<svg class="chart"'):page.index("</svg>")]
    tools = next(s for s in Pipeline().trim(EXAMPLE.read_bytes(), ModelProfile.for_tier("small")).report.stages
                 if s.name == "tools")
    assert chart.count("<rect") == len(STAGES) and f"−{tools.chars_before - tools.chars_after:,}</text>" in chart
    assert '<pre class="diff">' in page and '<span class="del">-You are Claude Code' in page
    assert "<style>" in page and "<link" not in page and "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)  # nothing loaded from elsewhere
    assert "tools_dropped" in page and "Bash, Glob, Grep, Read, Edit, Write" in page


def test_html_of_a_capture_shows_the_response_the_server_gave(capsys, tmp_path):
    entry = tmp_path / "captures" / "20250101-120000.000001-0001"
    entry.mkdir(parents=True)
    (entry / "original.json").write_bytes(EXAMPLE.read_bytes())
    (entry / "response.json").write_text(json.dumps({
        "content": [{"type": "text", "text": "I'll look <here> first."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "cart.py"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 1100, "output_tokens": 30, "cache_read_input_tokens": 900},
    }))
    html_report(capsys, str(tmp_path / "captures"), "--html", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "I&#39;ll look &lt;here&gt; first." in page and "[tool_use Read]" in page
    assert "<dt>tool calls</dt><dd>Read</dd>" in page and "<dd>900</dd>" in page


def test_html_to_a_place_that_cannot_be_written_is_a_one_line_error(capsys, tmp_path):
    assert main(["inspect", str(EXAMPLE), "--html", str(tmp_path / "no" / "such" / "dir" / "r.html")]) == Exit.INPUT
    assert "cannot write" in capsys.readouterr().err
