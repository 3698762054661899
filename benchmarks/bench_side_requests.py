"""Seconds the user's turn waits behind a side request, before and after, side by side.

    python benchmarks/bench_side_requests.py [--prefill-tps 500] [--decode-tps 40]

Measured through the server, not the terminal UI: the title request and the first turn
that Claude Code's terminal UI sent (recorded from the pinned version, see
trimkit.testing.recorder), sent again the way the UI sends them, the title 20 ms ahead.
The model is simulated with a laptop's speeds (a prefill of ``--prefill-tps`` tokens a
second over the trimmed prompt, then ``--decode-tps`` tokens a second), so the figure
is the queueing alone. The wait is the turn's time to its first token with the title
sent alongside, less its time alone.

"before" is the queue as it was: first come, first served, a side request running to
its end; "after" serves the user's turn first and has a side request holding the slot
step aside; "quick titles" answers the title without the model.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from trimkit.backends.base import Backend, BackendStatus, Finished, Readiness, TextDelta  # noqa: E402
from trimkit.profile import ModelProfile  # noqa: E402
from trimkit.request_kind import RequestKind  # noqa: E402
from trimkit.server import ServerSettings, create_app  # noqa: E402
from trimkit.server.messages import MessageService  # noqa: E402
from trimkit.testing import LiveServer  # noqa: E402
from trimkit.testing.clients import CLAUDE_CODE  # noqa: E402
from trimkit.testing.recorder import load_client_recordings, record_client  # noqa: E402

TITLE_AHEAD = 0.02


class SimulatedModel(Backend):
    """Sleeps a prefill in proportion to the prompt, then says a short answer at a decode speed."""

    name = "simulated"

    def __init__(self, prefill_tps: float, decode_tps: float):
        self.profile = ModelProfile(name="simulated", context_window=32_768, tier="small", prefill_tps=prefill_tps)
        self.prefill_tps, self.decode_tps = prefill_tps, decode_tps

    def status(self) -> BackendStatus:
        return BackendStatus(Readiness.READY)

    async def generate(self, messages, params):
        prompt = self.count_tokens(messages)
        await asyncio.sleep(prompt / self.prefill_tps)
        words = ('{"title": "Arithmetic question"}' if "<session>" in messages[-1]["content"] else "4").split(" ")
        for word in words:
            await asyncio.sleep(1 / self.decode_tps)
            yield TextDelta(word + " ")
        yield Finished(finish="stop", input_tokens=prompt, output_tokens=len(words))


def first_token_after(client: httpx.Client, body: dict, started: float, out: dict, key: str) -> None:
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}) as response:
        for line in response.iter_lines():
            if key not in out and line.startswith("event: content_block_delta"):
                out[key] = time.monotonic() - started


def wait_behind(title: dict, main: dict, model: SimulatedModel, settings: ServerSettings) -> tuple[float, float]:
    """(the turn's time to first token alone, with the title sent just before it)."""
    with LiveServer(create_app(settings, backend=model)) as server, httpx.Client(base_url=server.url, timeout=600) as client:
        alone: dict = {}
        first_token_after(client, main, time.monotonic(), alone, "main")
        timings: dict = {}
        started = time.monotonic()
        side = threading.Thread(target=first_token_after, args=(client, title, started, timings, "title"))
        side.start()
        time.sleep(TITLE_AHEAD)
        first_token_after(client, main, time.monotonic(), timings, "main")
        side.join()
    return alone["main"], timings["main"]


def recorded_pair() -> tuple[dict, dict]:
    recordings = load_client_recordings(record_client(CLAUDE_CODE, "pinned"))
    tui = [r for r in recordings if r.case == "terminal_ui"]
    title = next(r for r in tui if r.kind is RequestKind.TITLE)
    main = next(r for r in tui if r.kind is RequestKind.MAIN)
    return title.body, main.body


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefill-tps", type=float, default=500.0)
    parser.add_argument("--decode-tps", type=float, default=40.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    title, main_turn = recorded_pair()
    fifo = MessageService.reserve

    def first_come_first_served(self, prep):
        return None if prep.answer is not None else self.gate.reserve(urgent=True)

    setups = {"before": (first_come_first_served, ServerSettings(backend="simulated")),
              "after": (fifo, ServerSettings(backend="simulated")),
              "quick titles": (fifo, ServerSettings(backend="simulated", quick_titles=True))}
    print(f"simulated model: prefill {args.prefill_tps:.0f} tok/s, decode {args.decode_tps:.0f} tok/s; "
          f"the recorded title request sent {TITLE_AHEAD * 1000:.0f} ms before the recorded first turn\n")
    print(f"{'queue':<14}{'first token alone':>19}{'with the title':>16}{'waited behind it':>18}")
    for name, (reserve, settings) in setups.items():
        MessageService.reserve = reserve
        samples = [wait_behind(title, main_turn, SimulatedModel(args.prefill_tps, args.decode_tps), settings)
                   for _ in range(args.repeat)]
        alone = statistics.median(a for a, _ in samples)
        together = statistics.median(t for _, t in samples)
        print(f"{name:<14}{alone:>17.2f} s{together:>14.2f} s{together - alone:>16.2f} s")
    MessageService.reserve = fifo
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
