"""docs/live-view.png: the live view after a real Claude Code session, taken in headless chromium.

    python benchmarks/figure_live_view.py                 # writes docs/live-view.png
    python benchmarks/figure_live_view.py --out /tmp/x.png

Claude Code (from npm, installed into the test cache) runs two prompts in one session
against trimkit on a tiny random MLX model, its replies forced token by token through
the real generation path (a Write call, a reply, a Read call, a reply): the figures on
the page (time to first token, prefill and decode speed, tokens from the cache) are the
model's own. Captures are off, so the page shows no prompt text. Debian's chromium,
driven by Playwright, takes the picture.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402
from trimkit.testing.clients import CLIENTS, install  # noqa: E402
from trimkit.testing.families import Script  # noqa: E402
from trimkit.testing.tinymodel import build_tiny_model  # noqa: E402

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def call(tool: str, **arguments: str) -> str:
    parameters = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in arguments.items())
    return f'<function_calls>\n<invoke name="{tool}">\n{parameters}</invoke>\n</function_calls>'


def claude(binary: Path, url: str, work: Path, home: Path, prompt: str, *extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="trimkit",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", API_TIMEOUT_MS="600000")
    done = subprocess.run([str(binary), "-p", prompt, *extra], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    print(f"claude -p {prompt!r}: exit {done.returncode}: {done.stdout.strip()[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "live-view.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    binary = install(CLIENTS["claude-code"], "pinned")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        work, home = tmp_path / "work", tmp_path / "home"
        work.mkdir()
        home.mkdir()
        target = work / "hello.txt"
        model = build_tiny_model(tmp_path / "tiny-random-llama", layers=4, hidden=256, heads=4, head_dim=64)
        script = Script(model, responder=lambda prompt: "Done.")
        script.push("I'll create the file.\n" + call("Write", file_path=str(target), content="hello world"),
                    "Created hello.txt containing hello world.",
                    "Let me read it.\n" + call("Read", file_path=str(target)),
                    "It says: hello world.")
        from trimkit.backends.mlx import MLXBackend

        backend = MLXBackend(str(model), logits_processors=script).wait_ready(120)
        app = create_app(ServerSettings(backend="mlx", model=str(model), max_output_tokens=512), backend=backend)
        try:
            with LiveServer(app) as server, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=BROWSER_FLAGS)
                page = browser.new_page(viewport={"width": 1500, "height": 265}, device_scale_factor=1)
                page.goto(server.url + "/ui")
                page.wait_for_selector("#connection:text('live')")
                claude(binary, server.url, work, home, "create hello.txt containing hello world",
                       "--allowedTools", "Write")
                claude(binary, server.url, work, home, "what does hello.txt say?", "--continue",
                       "--allowedTools", "Read")
                page.locator("#rows tr.state-ok").nth(3).wait_for(timeout=60_000)
                page.wait_for_timeout(600)  # the last status bar update
                page.screenshot(path=args.out)
                browser.close()
        finally:
            backend.close()
    print(f"wrote {args.out} ({Path(args.out).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
