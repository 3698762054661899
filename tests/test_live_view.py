"""The live view at /ui: its pages, events and login, and the same in a real browser (Debian's chromium)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.clients import sdk
from tests.support.servers import replay_server
from trimkit.server.live_view import SESSION_COOKIE, sse_frame
from trimkit.server.user_agent import client_family

KEY = "live-view-key-5e90a1"
PROMPT = "PROMPT-TEXT-41b7 please summarise the cart module"
REPLY = "REPLY-TEXT-93c2 The cart keeps line items."
CHROMIUM = os.environ.get("TRIMKIT_CHROMIUM", "/usr/bin/chromium")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def ask(url: str, content: str = PROMPT, **request):
    return sdk(url, api_key=KEY).messages.create(
        model=request.pop("model", "claude-opus-4-8"), max_tokens=64,
        messages=[{"role": "user", "content": content}], **request)


def first_events(url: str, count: int, headers: dict | None = None) -> str:
    """The first ``count`` events of ``/ui/events``, raw (the stream itself never ends)."""
    frames: list[str] = []
    with httpx.stream("GET", url + "/ui/events", headers=headers or {}, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer and len(frames) < count:
                frame, buffer = buffer.split("\n\n", 1)
                if frame.startswith("event:"):
                    frames.append(frame)
            if len(frames) >= count:
                break
    return "\n\n".join(frames)


def test_user_agents_become_client_names():
    assert client_family("claude-cli/2.1.197 (external, sdk-cli)") == "Claude Code 2.1.197"
    assert client_family("opencode/1.18.33 ai-sdk/provider-utils/4.0.46 runtime/bun/1.3.14") == "OpenCode 1.18.33"
    assert client_family("Anthropic/Python 2.14.0") == "anthropic SDK (Python) 2.14.0"
    assert client_family("curl/8.5.0") == "curl 8.5.0"
    assert client_family("Strange Agent") == "Strange"
    assert client_family("x" * 500) == "x" * 32
    assert client_family(None) == "" and client_family("  ") == "other"


def test_an_sse_frame_gives_every_line_its_own_data_field():
    frame = sse_frame("request", "<tr>\n<td>a\rb</td>\r\n</tr>").decode()
    assert frame == "event: request\ndata: <tr>\ndata: <td>a\ndata: b</td>\ndata: </tr>\n\n"


def test_the_page_needs_the_key_and_the_cookie_never_holds_it():
    with replay_server(["Hello."], api_key=KEY) as server:
        for path in ("/ui", "/ui/requests/1", "/ui/events"):
            assert httpx.get(server.url + path, timeout=10).status_code == 401, path
        refused = httpx.get(server.url + "/ui", timeout=10)
        assert 'action="/ui/login"' in refused.text and KEY not in refused.text
        wrong = httpx.post(server.url + "/ui/login", data={"key": "not-it"}, timeout=10)
        assert wrong.status_code == 401 and "not the server" in wrong.text
        login = httpx.post(server.url + "/ui/login", data={"key": KEY}, timeout=10)
        assert login.status_code == 303 and login.headers["location"] == "/ui"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert "Path=/ui" in cookie and KEY not in cookie
        session = {SESSION_COOKIE: login.cookies[SESSION_COOKIE]}
        page = httpx.get(server.url + "/ui", cookies=session, timeout=10)
        assert page.status_code == 200 and 'id="rows"' in page.text and "log out" in page.text
        assert httpx.get(server.url + "/ui", headers={"x-api-key": KEY}, timeout=10).status_code == 200
        assert httpx.get(server.url + "/ui", cookies={SESSION_COOKIE: "forged"}, timeout=10).status_code == 401
        logout = httpx.post(server.url + "/ui/logout", cookies=session, timeout=10)
        assert logout.status_code == 303 and 'trimkit_ui=""' in logout.headers["set-cookie"]
        assert httpx.get(server.url + "/ui/assets/page.css", timeout=10).status_code == 200  # the login page's style
        assert httpx.get(server.url + "/ui/assets/../../etc/passwd", timeout=10).status_code == 404


OBSERVING = ("/ui", "/ui/requests/1", "/ui/events", "/ui/assets/live.js", "/metrics")


def test_without_a_key_the_pages_and_metrics_answer_only_this_machine_as_the_api_does():
    """A page that rebinds its DNS name to 127.0.0.1, or a cross-site script, reads neither the list nor /metrics."""
    with replay_server(["Hello."]) as server:
        ask(server.url)
        for path in OBSERVING:
            rebound = httpx.get(server.url + path, headers={"host": "attacker.example:8787"}, timeout=10)
            cross_site = httpx.get(server.url + path, headers={"origin": "https://attacker.example"}, timeout=10)
            for refused in (rebound, cross_site):
                assert refused.status_code == 403, path
                assert refused.json()["error"]["type"] == "permission_error"
            api = httpx.get(server.url + "/v1/models", headers={"host": "attacker.example"}, timeout=10)
            assert api.status_code == 403
        assert httpx.get(server.url + "/ui", headers={"origin": server.url}, timeout=10).status_code == 200
        assert httpx.get(server.url + "/metrics", timeout=10).status_code == 200


def test_with_a_key_a_wrong_key_opens_neither_the_pages_nor_metrics():
    with replay_server(["Hello."], api_key=KEY) as server:
        ask(server.url)
        for path in OBSERVING:
            if path.startswith("/ui/assets"):
                continue  # the login page's own style and script: no request data in them
            for headers in ({}, {"x-api-key": "not-it"}, {"authorization": "Bearer not-it"}):
                refused = httpx.get(server.url + path, headers=headers, timeout=10)
                assert refused.status_code == 401, (path, headers)
                assert KEY not in refused.text and "claude-opus" not in refused.text
            assert httpx.get(server.url + path if path != "/ui/events" else server.url + "/ui",
                             headers={"x-api-key": KEY}, timeout=10).status_code == 200


def test_pages_load_nothing_from_elsewhere_and_say_so():
    with replay_server(["Hello."]) as server:
        page = httpx.get(server.url + "/ui", timeout=10)
        script = httpx.get(server.url + "/ui/assets/live.js", timeout=10)
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/ui/assets/live.js"' in page.text and "<script>" not in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert script.headers["content-type"].startswith("text/javascript") and "EventSource" in script.text


def test_requests_appear_without_prompt_text_or_the_key_when_captures_are_off():
    with replay_server(["Hello.", REPLY], api_key=KEY) as server:
        headers = {"x-api-key": KEY}
        ask(server.url)
        ask(server.url, model="claude-<script>alert(1)</script>")
        page = httpx.get(server.url + "/ui", headers=headers, timeout=10).text
        detail = httpx.get(server.url + "/ui/requests/1", headers=headers, timeout=10).text
        events = first_events(server.url, 2, headers)
        metrics = httpx.get(server.url + "/metrics", headers=headers, timeout=10).text
    assert page.count('<tr id="req-') == 2
    assert page.index('id="req-2"') < page.index('id="req-1"')  # newest first
    assert "anthropic SDK (Python)" in page and "claude-opus-4-8" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "&lt;script&gt;" in events and "<script>alert" not in events
    assert "table class=\"stages\"" in detail and "<svg" in detail and "captures are on" in detail
    for shown in (page, detail, events, metrics):
        assert KEY not in shown
        assert "PROMPT-TEXT" not in shown and "REPLY-TEXT" not in shown


def test_with_captures_on_a_request_shows_its_diff_and_response(tmp_path):
    with replay_server([REPLY], capture_dir=str(tmp_path / "captures")) as server:
        ask(server.url, system="You are terse.")
        detail = httpx.get(server.url + "/ui/requests/1", timeout=10).text
        gone = httpx.get(server.url + "/ui/requests/99", timeout=10)
    assert "PROMPT-TEXT-41b7" in detail and REPLY in detail
    assert '<pre class="prompt">' in detail
    assert gone.status_code == 404 and "not kept" in gone.text


def test_events_bring_each_new_request_as_a_rendered_row():
    with replay_server(["One.", "Two."]) as server:
        events: list[str] = []
        ready = threading.Event()

        def finished() -> set[str]:
            rows = "".join(e for e in events if e.startswith("event: request"))
            return {i for i in ("1", "2") if f'<tr id="req-{i}" class="state-ok"' in rows}

        def listen():
            with httpx.stream("GET", server.url + "/ui/events", timeout=30) as response:
                buffer = ""
                for chunk in response.iter_text():
                    buffer += chunk
                    ready.set()
                    while "\n\n" in buffer:
                        frame, buffer = buffer.split("\n\n", 1)
                        events.append(frame.replace("\ndata: ", "\n"))
                    if finished() == {"1", "2"}:
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert ready.wait(10)
        sdk(server.url).messages.create(model="claude-opus-4-8", max_tokens=16, messages=[{"role": "user", "content": "a"}])
        sdk(server.url).messages.create(model="claude-opus-4-8", max_tokens=16, messages=[{"role": "user", "content": "b"}])
        listener.join(30)
    assert events[0] == "retry: 3000" and events[1].startswith("event: reset")
    assert finished() == {"1", "2"}
    assert any(e.startswith("event: status") and "requests since start" in e for e in events)


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (no browser download: ``executable_path``)."""
    missing = [] if Path(CHROMIUM).exists() else [CHROMIUM]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright")
    if missing:
        message = f"the browser test needs {', '.join(missing)} (.ci/run installs them)"
        if reason := os.environ.get("TRIMKIT_NO_CHROMIUM"):
            pytest.skip(f"{message}; .ci/run could not install chromium: {reason}")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        yield browser
        browser.close()


def test_in_a_browser_a_request_appears_live_and_its_detail_opens(browser, tmp_path):
    shots = Path(os.environ.get("TRIMKIT_SCREENSHOTS", tmp_path))
    with replay_server(["Hello.", "Done."], api_key=KEY) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 700})
        page.goto(server.url + "/ui")
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        page.wait_for_selector("#connection:text('live')")
        assert page.locator("#rows tr").count() == 0

        ask(server.url)
        row = page.locator("#req-1.state-ok")
        row.wait_for()
        assert "anthropic SDK (Python)" in row.inner_text() and "small" in row.inner_text()
        ask(server.url, content="second question")
        page.locator("#req-2.state-ok").wait_for()
        assert page.locator("#rows tr").first.get_attribute("id") == "req-2"
        page.screenshot(path=str(shots / "live-view.png"))
        listed = page.content()

        row.click()
        page.wait_for_url("**/ui/requests/1")
        page.locator("table.stages").wait_for()
        assert page.locator("table.stages tbody tr").count() >= 5
        page.screenshot(path=str(shots / "live-view-detail.png"), full_page=True)
        detail = page.content()
        cookies = page.context.cookies()
        page.close()
    assert (shots / "live-view.png").stat().st_size > 10_000
    for shown in (listed, detail):
        assert KEY not in shown and "PROMPT-TEXT" not in shown
    assert [c["httpOnly"] for c in cookies if c["name"] == SESSION_COOKIE] == [True]
    assert all(KEY not in c["value"] for c in cookies)


def test_the_browser_driven_is_the_system_chromium(browser):
    """Nothing here downloads a browser: the one driven is the system's, at its version."""
    shown = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout
    assert browser.version and browser.version in shown


@pytest.mark.e2e
def test_a_claude_code_session_shows_up_as_claude_code_with_its_tool_call_and_no_prompt_text(claude_bin, tmp_path):
    from tests.support.agents import work_and_home, write_file_script
    from tests.test_e2e_claude_code import run_claude

    work, home = work_and_home(tmp_path)
    with replay_server(write_file_script("Write", "file_path", work / "hello.txt"), name="replay",
                       window=65_536) as server:
        done = run_claude(claude_bin, server.url, "create hello.txt containing hello world", work, home,
                          "--allowedTools", "Write")
        page = httpx.get(server.url + "/ui", timeout=10).text
        first = httpx.get(server.url + "/ui/requests/1", timeout=10).text
    assert done.returncode == 0, done.stdout + done.stderr
    assert page.count("<td class=\"client\">Claude Code 2.") == 2
    assert "<td>Write</td>" in page and "tools −" in page
    assert "<dt>tools offered</dt>" in first and "Write" in first
    for shown in (page, first):
        assert "Claude Code, Anthropic" not in shown and "hello world" not in shown
