"""Hardening figures: fuzzing, load, disconnects, memory and hostile inputs, in one run.

    python benchmarks/soak.py                 # everything (about an hour on 2 cores: 20,000 bodies on MLX)
    python benchmarks/soak.py --quick         # smaller counts, for a first look
    python benchmarks/soak.py --no-mlx        # replay backend only
    python benchmarks/soak.py --mlx-fuzz 2000 # fewer fuzzed bodies on the tiny MLX model
    python benchmarks/soak.py --parts hostile # only some parts (fuzz, load, disconnect, memory, hostile, mlx-fuzz)
    python benchmarks/soak.py --before none   # the hostile inputs on this tree alone

Prints:
  - requests fuzzed (hypothesis strategies and schemathesis) and 5xx seen;
  - concurrent streaming clients held: completed / 529, with a short and a long queue;
  - time from a client's disconnect to the model being free and to the next request
    starting generation (replay backend with a slow step; the tiny MLX model), next to
    the length of one decode step;
  - memory of a `trimkit serve` process (RSS) after 50 and after 1,000 varied requests
    (150 on the tiny MLX model, whose CPU prefill of Claude Code prompts is slow);
  - hostile inputs, each to a fresh `trimkit serve`: peak RSS (VmHWM) and the answer for a
    1 MB `stop_sequences` entry and for 1 MB of unclosed `<example>` tags in tool descriptions;
    `/health` latency while a 30 MB body is prepared; how long a request waits behind nine
    streaming clients that never read. Beside each, the same input at a size the older tree
    survives (``--before``, by default eb6ce57, the commit before these inputs were handled,
    checked out into a temporary git worktree and run with its ``trimkit`` first on the path):
    a 40 KB stop sequence (the older tree's memory grows with its square: 1 MB took 23 GB) and
    the most accepted (128 of 4,096 characters),
    64 KB of tags (its time grows with the square: 216 KB took 31 s), the 30 MB bodies (a
    session of 3,000 Read results, and one huge result) and the nine silent clients, each tree
    in its own processes;
  - requests fuzzed on the tiny MLX model (20,000 by default) and 5xx seen.

Every server is started here on 127.0.0.1 and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from benchmarks.older_tree import older_tree  # noqa: E402
from tests.fixtures import claude_code as cc  # noqa: E402
from tests.fixtures.hardening import (  # noqa: E402
    REPLAY_TURNS,
    ChunkBackend,
    EchoBackend,
    Tally,
    base_request,
    json_bodies,
    probed_mlx_backend,
    profile,
    serve,
    served_jobs,
    strange_requests,
)
from trimkit.backends.replay import ReplayBackend  # noqa: E402
from trimkit.testing import spawn_server, stop_server  # noqa: E402

JSON = {"content-type": "application/json"}


# --------------------------------------------------------------------------- fuzzing


def fuzz(examples: int) -> Tally:
    import schemathesis
    from schemathesis import GenerationMode

    tally = Tally()
    backend = ReplayBackend(REPLAY_TURNS, profile=profile(), loop=True)
    quiet = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        post_fuzzed_bodies(client, tally, quiet)
        schema = schemathesis.openapi.from_url(live.url + "/schema/openapi.json")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @quiet
            @given(case=schema.as_strategy(generation_mode=mode))
            def call(case):
                response = case.call(timeout=60)
                tally.check(httpx.Response(response.status_code, content=response.content, headers={
                    "content-type": response.headers.get("content-type", [""])[0]}))

            call()
    return tally


def post_fuzzed_bodies(client: httpx.Client, tally: Tally, quiet: settings) -> None:
    """Fuzzed bodies (plain JSON values, then strange requests) to /v1/messages or count_tokens, every answer tallied."""
    for strategy in (json_bodies, strange_requests):
        @quiet
        @given(body=strategy, count=...)
        def send(body, count: bool):
            route = "/v1/messages/count_tokens" if count else "/v1/messages"
            tally.check(client.post(route, content=body, headers=JSON))

        send()


# --------------------------------------------------------------------------- load


def concurrent_streams(clients: int, max_queue: int, timeout: float = 60) -> dict[str, int]:
    backend = EchoBackend(chunks=16, delay=0.005)
    outcome = {"completed": 0, "529": 0, "wrong tokens": 0, "hung": 0, "other": 0}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = base_request(stream=True, messages=[{"role": "user", "content": f"soak-{i}"}])
        try:
            response = await asyncio.wait_for(client.post("/v1/messages", json=body), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            outcome["hung"] += 1
            return
        if response.status_code == 529:
            outcome["529"] += 1
        elif response.status_code != 200 or "event: message_stop" not in response.text:
            outcome["other"] += 1
        else:
            texts = [json.loads(line[6:])["delta"].get("text", "") for line in response.text.splitlines()
                     if line.startswith("data: ") and '"content_block_delta"' in line]
            ok = "".join(texts) == f"<soak-{i}>" * backend.chunks
            outcome["completed" if ok else "wrong tokens"] += 1

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
            await asyncio.gather(*(one(client, i) for i in range(clients)))

    with serve(backend, max_queue=max_queue) as live:
        asyncio.run(main(live.url))
    outcome["most at once on the model"] = backend.most_active
    return outcome


# --------------------------------------------------------------------------- disconnects


def first_delta_then_close(client: httpx.Client, body: dict) -> float:
    """Stream until the first text arrives, then drop the connection; returns when it was dropped."""
    with client.stream("POST", "/v1/messages", json=body) as response:
        lines = response.iter_lines()
        while next(lines) != "event: content_block_delta":
            pass
        closed_at = time.perf_counter()
        response.close()
    return closed_at


def replay_disconnects(trials: int, step: float) -> tuple[list[float], list[float]]:
    """(disconnect → backend closed, disconnect → next request's generation started), in seconds."""
    freed, next_started = [], []
    for _ in range(trials):
        backend = EchoBackend(chunks=10**6, delay=step)
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            closed_at = first_delta_then_close(client, base_request(stream=True, max_tokens=10**6))
            client.post("/v1/messages", json=base_request(max_tokens=1))
        freed.append(backend.ended[0] - closed_at)
        next_started.append(backend.started[1] - closed_at)
    return freed, next_started


def mlx_disconnects(model_dir: Path, trials: int) -> dict[str, list[float]]:
    probed = probed_mlx_backend()
    backend = probed(str(model_dir)).wait_ready(60)
    figures: dict[str, list[float]] = {"freed": [], "next": [], "step": [], "steps after cancel": []}
    try:
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=60) as client:
            client.post("/v1/messages", json=base_request(max_tokens=200, temperature=0.0))
            backend.wait_idle(30)
            [plain] = served_jobs(backend)
            step = (plain["end"] - plain["start"]) / max(plain["emitted"], 1)
            for _ in range(trials):
                backend.jobs.clear()
                closed_at = first_delta_then_close(client, base_request(stream=True, max_tokens=20_000))
                client.post("/v1/messages", json=base_request(max_tokens=1))
                backend.wait_idle(30)
                left, following = served_jobs(backend)[:2]
                figures["freed"].append(left["end"] - closed_at)
                figures["next"].append(following["start"] - closed_at)
                figures["steps after cancel"].append(left["emitted"] - (left["emitted_at_cancel"] or 0))
        figures["step"] = [step]
    finally:
        backend.close()
    return figures


# --------------------------------------------------------------------------- memory


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def varied_requests(count: int, turns: int):
    """Claude-Code-shaped traffic: sessions up to ``turns`` long, title requests, counts, bad requests."""
    prefixes = cc.session_prefixes(turns, nonce=lambda k: f"{k:04d}")
    for i in range(count):
        if i % 13 == 0:
            yield "/v1/messages", {"model": "claude-x", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]}
        elif i % 11 == 0:
            yield "/v1/messages/count_tokens", {k: v for k, v in prefixes[i % len(prefixes)].items() if k != "max_tokens"}
        elif i % 10 == 0:
            yield "/v1/messages", cc.title_request(f"task number {i}", nonce=f"{i:04d}")
        else:
            request = dict(prefixes[i % len(prefixes)])
            request["stream"] = i % 2 == 0
            request["system"] = [dict(request["system"][0], text=cc.billing_header(f"{i:06d}")), *request["system"][1:]]
            yield "/v1/messages", request


def memory_soak(args: list[str], requests: int, turns: int, first: int = 50) -> tuple[int, int, float]:
    proc, url = spawn_server(args, timeout=120)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            after_first = 0
            for i, (route, body) in enumerate(varied_requests(requests, turns), start=1):
                response = client.post(route, json=body)
                if response.status_code >= 500:
                    raise RuntimeError(f"request {i}: {response.status_code} {response.text[:200]}")
                if i == first:
                    after_first = rss_kib(proc.pid)
            after_all = rss_kib(proc.pid)
    finally:
        stop_server(proc)
    return after_first, after_all, 100.0 * (after_all - after_first) / after_first


# --------------------------------------------------------------------------- hostile inputs


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that runs ``tree``'s trimkit (its src first on the path, before the installed one)."""
    return {"PYTHONPATH": os.pathsep.join([str(tree / "src"), str(ROOT)])}


def replay_server_process(script_turns: list[str], tree: Path = ROOT) -> tuple[object, str]:
    script = Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "script.json"
    script.write_text(json.dumps(script_turns))
    return spawn_server(["--backend", "replay", "--script", str(script)], env=tree_env(tree), timeout=120)


def hostile_peak(body: dict, tree: Path = ROOT) -> tuple[int, int, int, float]:
    """A fresh server's peak RSS before and after ``body`` (KiB), the answer's status and its seconds."""
    proc, url = replay_server_process(["ok"] * 4, tree)
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            client.post("/v1/messages", json=base_request())
            before = peak_rss_kib(proc.pid)
            started = time.perf_counter()
            status = client.post("/v1/messages", json=body).status_code
            elapsed = time.perf_counter() - started
            after = peak_rss_kib(proc.pid)
    finally:
        stop_server(proc)
    return before, after, status, elapsed


def stop_sequence_body(chars: int) -> dict:
    return base_request(stop_sequences=["a" * chars])


def example_tags_body(chars: int) -> dict:
    tools = [{"name": name, "description": ("<example>" * (chars // 9 + 1))[:chars],
              "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}} for name in ("Read", "Bash")]
    return base_request(tools=tools)


def big_body(body_mb: int, shape: str) -> dict:
    """A valid request of about ``body_mb`` MB: ``"one result"``, a session whose one old tool result is
    huge, or ``"many turns"``, a session of Read calls with 10 KB results (what a long agent session sends)."""
    if shape == "one result":
        return base_request(messages=[
            {"role": "user", "content": "read the log"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": "log"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": "log line\n" * (body_mb * 1000 * 1000 // 10)}]},
            {"role": "assistant", "content": "Read it."},
            {"role": "user", "content": "what went wrong?"}])
    messages: list = [{"role": "user", "content": "read every file"}]
    for i in range(body_mb * 100):
        lines = "".join(f"{n:5d}\tdef function_{i}_{n}(value): return value * {n}  # line {n}\n" for n in range(150))
        messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": "Read",
                                               "input": {"file_path": f"/src/module_{i}.py"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": lines}]}]
    messages += [{"role": "assistant", "content": "Read them all."}, {"role": "user", "content": "what is wrong?"}]
    return base_request(messages=messages)


def health_while_preparing(body_mb: int, tree: Path = ROOT, shape: str = "many turns") -> tuple[list[float], float, int]:
    """/health latencies (s) while a ``body_mb`` MB request is prepared; the request's seconds and status."""
    proc, url = replay_server_process(["ok"] * 4, tree)
    big = big_body(body_mb, shape)
    latencies: list[float] = []
    outcome: dict = {}
    try:
        def send() -> None:
            started = time.perf_counter()
            outcome["status"] = httpx.post(url + "/v1/messages", json=big, timeout=600).status_code
            outcome["seconds"] = time.perf_counter() - started

        import threading

        worker = threading.Thread(target=send)
        worker.start()
        with httpx.Client(base_url=url, timeout=600) as client:
            while worker.is_alive():
                started = time.perf_counter()
                client.get("/health")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)
        worker.join()
    finally:
        stop_server(proc)
    return latencies, outcome["seconds"], outcome["status"]


def behind_silent_clients(silent: int, chunks: int = 64, patience: float = 600) -> tuple[float, int, int]:
    """Seconds a request waits behind ``silent`` streaming clients that never read (each 4 MB of output),
    its status (0: no answer within ``patience`` seconds) and how many of their generations finished."""
    import socket

    backend = ChunkBackend(chunks=chunks)
    with serve(backend, max_queue=8) as live:
        data = json.dumps(base_request(stream=True, max_tokens=10**6)).encode()
        head = (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(data))
        sockets = []
        for _ in range(silent):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(head + data)
            sockets.append(sock)
        time.sleep(0.5)
        started = time.perf_counter()
        try:
            status = httpx.post(live.url + "/v1/messages", json=base_request(max_tokens=1),
                                timeout=patience).status_code
        except httpx.TimeoutException:
            status = 0
        waited = time.perf_counter() - started
        finished = backend.finished - (status == 200)  # of the silent ones, by the time it was answered
        for sock in sockets:
            sock.close()
    return waited, status, finished


def mlx_fuzz(model_dir: Path, examples: int) -> Tally:
    """``examples`` fuzzed bodies (half plain JSON values, half strange requests) against the tiny MLX model."""
    from trimkit.backends.mlx import MLXBackend

    tally = Tally()
    backend = MLXBackend(str(model_dir)).wait_ready(120)
    quiet = settings(max_examples=examples // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    try:
        with serve(backend, max_output_tokens=8, context_window=4096) as live, \
                httpx.Client(base_url=live.url, timeout=600) as client:
            post_fuzzed_bodies(client, tally, quiet)
    finally:
        backend.close()
    return tally


# --------------------------------------------------------------------------- report


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, worst {max(values) * 1000:.2f} ms"


PARTS = ("fuzz", "load", "disconnect", "memory", "hostile", "mlx-fuzz")
BEFORE = "eb6ce57"  # the commit before stop sequences, tool descriptions and slow clients were handled
SILENT_PATIENCE = 30.0  # seconds the older tree's request is given (it waits as long as the silent clients stay)


def silent_in_child(tree: Path) -> tuple[float, int, int]:
    """:func:`behind_silent_clients` run by ``tree``'s trimkit, in a process of its own."""
    done = subprocess.run([sys.executable, __file__, "--child-silent"], capture_output=True, text=True,
                          env={**os.environ, **tree_env(tree)}, timeout=SILENT_PATIENCE + 300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"the silent clients in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    assert Path(result["trimkit"]).resolve() == (tree / "src" / "trimkit").resolve(), result["trimkit"]
    return result["waited"], result["status"], result["finished"]


def hostile(trees: dict[str, Path], lap) -> None:
    """The hostile inputs, this tree at full size and every tree at the size the older one survives."""
    def peak(before: int, after: int, status: int, elapsed: float) -> str:
        return f"{status} in {elapsed:.2f} s, peak RSS {before / 1024:.0f} → {after / 1024:.0f} MiB"

    def health(latencies: list[float], seconds: float, status: int) -> str:
        return (f"{status} after {seconds:.1f} s; /health median {statistics.median(latencies) * 1000:.1f} ms, "
                f"worst {max(latencies) * 1000:.1f} ms ({len(latencies)} checks)")

    def silent(waited: float, status: int, finished: int) -> str:
        answer = f"{status}" if status else f"no answer within {SILENT_PATIENCE:.0f} s"
        return f"{answer} after {waited * 1000:.0f} ms; their generations finished: {finished} of 9"

    cases = [
        ("1 MB stop_sequences entry", {"now": lambda tree: peak(*hostile_peak(stop_sequence_body(1 << 20), tree))}),
        ("40 KB stop_sequences entry", {"*": lambda tree: peak(*hostile_peak(stop_sequence_body(40_000), tree))}),
        ("the most accepted: 128 stop sequences of 4,096 characters",
         {"*": lambda tree: peak(*hostile_peak(base_request(stop_sequences=[
             "s" * 4095 + chr(0x4E00 + i) for i in range(128)]), tree))}),
        ("1 MB of unclosed <example> tags in tool descriptions",
         {"now": lambda tree: peak(*hostile_peak(example_tags_body(1 << 20), tree))}),
        ("64 KB of unclosed <example> tags in tool descriptions",
         {"*": lambda tree: peak(*hostile_peak(example_tags_body(64_000), tree))}),
        ("a 30 MB session (3,000 Read results) prepared", {"*": lambda tree: health(*health_while_preparing(30, tree))}),
        ("a 30 MB tool result prepared",
         {"*": lambda tree: health(*health_while_preparing(30, tree, "one result"))}),
        ("a request behind 9 streaming clients that never read (4 MB each)", {"*": lambda tree: silent(*silent_in_child(tree))}),
    ]
    for name, runs in cases:
        for label, tree in trees.items():
            run = runs.get(label) or runs.get("*")
            if run is not None:
                print(f"hostile:      {name}, {label}: {run(tree)} {lap()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--no-mlx", action="store_true", help="skip the runs on the tiny MLX model")
    parser.add_argument("--mlx-fuzz", type=int, default=None, help="bodies fuzzed on the tiny MLX model (20,000)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--before", default=BEFORE, help=f"older commit for the hostile inputs ({BEFORE}; none)")
    parser.add_argument("--child-silent", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child_silent:
        import trimkit

        waited, status, finished = behind_silent_clients(9, patience=SILENT_PATIENCE)
        print("RESULT " + json.dumps({"waited": waited, "status": status, "finished": finished,
                                      "trimkit": str(Path(trimkit.__file__).parent)}))
        return
    parts = set(options.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    mlx_fuzz_examples = options.mlx_fuzz or (500 if options.quick else 20_000)
    fuzz_examples, memory_requests, mlx_memory_requests, trials = (
        (100, 300, 60, 5) if options.quick else (500, 1000, 150, 20)
    )
    started = last = time.perf_counter()

    def lap() -> str:
        nonlocal last
        now, elapsed = time.perf_counter(), time.perf_counter() - last
        last = now
        return f"[{elapsed:.0f} s]"

    if "fuzz" in parts:
        tally = fuzz(fuzz_examples)
        print(f"bad input:    {tally.summary()} {lap()}", flush=True)
        for problem in tally.server_errors[:5]:
            print(f"              5xx: {problem}")

    if "load" in parts:
        for clients, max_queue in ((32, 8), (32, 32)):
            outcome = concurrent_streams(clients, max_queue)
            print(f"load:         {clients} streaming clients, max_queue {max_queue}: "
                  + ", ".join(f"{k} {v}" for k, v in outcome.items()) + f" {lap()}", flush=True)

    if "disconnect" in parts:
        step = 0.05
        freed, next_started = replay_disconnects(trials, step)
        print(f"disconnect:   replay backend, {step * 1000:.0f} ms per step, {trials} trials: "
              f"model free {ms(freed)}; next request generating {ms(next_started)} {lap()}", flush=True)

    model_dir = None
    if not options.no_mlx and parts & {"disconnect", "memory", "mlx-fuzz"}:
        from trimkit.testing.tinymodel import build_tiny_model

        model_dir = build_tiny_model(Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "tiny")
    if model_dir is not None and "disconnect" in parts:
        figures = mlx_disconnects(model_dir, trials)
        print(f"disconnect:   tiny MLX model, {trials} trials: model free {ms(figures['freed'])}; "
              f"next request generating {ms(figures['next'])}; one decode step {figures['step'][0] * 1000:.2f} ms; "
              f"steps emitted after the cancel flag: worst {max(figures['steps after cancel'])} {lap()}", flush=True)

    if "memory" in parts:
        script = Path(tempfile.mkdtemp(prefix="trimkit-soak-")) / "script.json"
        script.write_text(json.dumps(REPLAY_TURNS * (2 * memory_requests // len(REPLAY_TURNS) + 2)))  # a retried tool call takes two
        first, final, growth = memory_soak(["--backend", "replay", "--script", str(script)], memory_requests, turns=30)
        print(f"memory:       replay backend, {memory_requests} varied requests: RSS after 50 {first / 1024:.1f} MiB, "
              f"after {memory_requests} {final / 1024:.1f} MiB ({growth:+.1f} %) {lap()}", flush=True)
        if model_dir is not None:
            mlx_args = ["--model", str(model_dir), "--max-output-tokens", "16", "--context-window", "16384"]
            first, final, growth = memory_soak(mlx_args, mlx_memory_requests, turns=6)
            print(f"memory:       tiny MLX model, {mlx_memory_requests} varied requests: RSS after 50 "
                  f"{first / 1024:.1f} MiB, after {mlx_memory_requests} {final / 1024:.1f} MiB ({growth:+.1f} %) "
                  f"{lap()}", flush=True)

    if "hostile" in parts:
        with tempfile.TemporaryDirectory(prefix="trimkit-soak-") as tmp, \
                older_tree(options.before, Path(tmp) / "before") as before:
            trees = {"now": ROOT}
            if before is not None:
                trees[f"before ({options.before})"] = before
            hostile(trees, lap)

    if model_dir is not None and "mlx-fuzz" in parts:
        tally = mlx_fuzz(model_dir, mlx_fuzz_examples)
        print(f"bad input:    tiny MLX model: {tally.summary()} {lap()}")
        for problem in tally.server_errors[:5]:
            print(f"              5xx: {problem}")
    print(f"(soak took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
