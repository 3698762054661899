"""Compare grammar engines for constrained decoding on trimkit's job, side by side in one run.

For llguidance, xgrammar and outlines-core (each where installed), on the tiny
model's tokenizer and on a 150 K-token one (both byte-level BPE from
``tokenizers``, the kind every MLX model ships):

* **JSON Schema coverage**: each of Claude Code's 25 tool schemas and the title
  schema compiled alone; then 20 random walks per schema (a random allowed token
  each step, leaning towards closing characters so walks end) checked with
  ``jsonschema``: a walk that ends but does not validate means a keyword the
  engine compiled but does not enforce (``minItems``, ``format``, ...);
* **tool-call grammar**: free text, then a call once ``<function_calls>`` is
  written (what trimkit needs for ``tool_choice: auto``); compiled or not;
* **cost per token**: compile time of the whole tool list as one JSON schema
  (``anyOf`` of ``{"name", "input"}``), then mean time to compute one mask over
  200 random-walk steps, on the 150 K vocabulary;
* **applying a mask to an MLX array on the CPU**: each engine's own MLX helper
  (llguidance's and outlines-core's are Metal kernels, which ``mlx[cpu]`` lacks),
  xgrammar's lookup-table op, and NumPy unpacking plus ``mx.where`` (trimkit's).

Run it where all three are installed (xgrammar needs torch, so not in trimkit's
own environment)::

    python -m venv /tmp/engines && /tmp/engines/bin/pip install llguidance xgrammar outlines-core \\
        torch==2.13.0 jsonschema mlx-lm 'mlx[cpu]' transformers
    PYTHONPATH=src:. /tmp/engines/bin/python benchmarks/bench_constrain_engines.py
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.claude_code import title_request  # noqa: E402
from tests.fixtures.claude_code_tools import tools as claude_code_tools  # noqa: E402

CLOSERS = ('"', "}", "]")
WALKS = 20
STEPS = 200
COMPILE_LIMIT = 60  # seconds; a compile that takes longer counts as failed


class time_limit:
    """Raise TimeoutError in the block after ``seconds`` (SIGALRM; the engines release the GIL)."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        import signal

        def expire(*_):
            raise TimeoutError(f"took over {self.seconds} s")

        signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        import signal

        signal.alarm(0)


def schemas() -> dict[str, dict]:
    out = {t["name"]: t["input_schema"] for t in claude_code_tools()}
    out["(title)"] = title_request("x")["output_config"]["format"]["schema"]
    return out


def union_schema() -> dict:
    return {
        "anyOf": [
            {"type": "object", "properties": {"name": {"const": n}, "input": s}, "required": ["name", "input"],
             "additionalProperties": False}
            for n, s in schemas().items() if n != "(title)"
        ]
    }


# ----------------------------------------------------------------- tokenizers


class Vocab:
    """A ``tokenizers`` tokenizer seen as the engines need it: bytes per token id, EOS."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.path = path
        self.json = (path / "tokenizer.json").read_text()
        self.tokenizer = Tokenizer.from_str(self.json)
        self.size = json.loads((path / "config.json").read_text())["vocab_size"]
        self.eos = self.tokenizer.token_to_id("<|im_end|>")
        self.bytes = [self.tokenizer.decode([i]).encode() if i < self.tokenizer.get_vocab_size() else b""
                      for i in range(self.size)]
        byte_decoder = _byte_decoder()
        for token, i in self.tokenizer.get_vocab().items():
            if token not in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
                self.bytes[i] = bytes(byte_decoder[c] for c in token)
        self.closing = np.array([any(c.encode() in b for c in CLOSERS) for b in self.bytes])


def _byte_decoder() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


# ----------------------------------------------------------------- engines


class Engine:
    name = "?"

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def compile_json(self, schema: dict): ...

    def compile_toolcall(self, schema: dict): ...

    def start(self, compiled): ...

    def mask(self, state) -> np.ndarray: ...  # booleans, vocab-sized

    def advance(self, state, token: int) -> bool: ...

    def finished(self, state) -> bool: ...


class LLGuidance(Engine):
    name = "llguidance"

    def __init__(self, vocab):
        import llguidance

        super().__init__(vocab)
        self.llg = llguidance
        self.tok = llguidance.LLTokenizer(vocab.json, n_vocab=vocab.size, eos_token=[vocab.eos])
        self.words = np.zeros((1, (vocab.size + 31) // 32), dtype=np.int32)

    def _matcher(self, grammar):
        m = self.llg.LLMatcher(self.tok, grammar, log_level=0)
        if m.is_error():
            raise ValueError(m.get_error()[:200])
        return m

    def compile_json(self, schema):
        return self._matcher(self.llg.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False}))

    def compile_toolcall(self, schema):
        return self._matcher(
            "start: FREE | head call\nhead[lazy]: /(?s:.*)<function_calls>/\n"
            "FREE: /(?s:.*)/ & ~/(?s:.*)<function_calls>(?s:.*)/\n"
            f"call: %json {json.dumps(schema)}\n")

    def start(self, compiled):
        return compiled.deep_copy()

    def mask(self, state):
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(state, self.words)
        return np.unpackbits(self.words[0].view(np.uint8), bitorder="little")[: self.vocab.size].astype(bool)

    def advance(self, state, token):
        return state.consume_token(token)

    def finished(self, state):
        return state.is_stopped() or state.is_accepting()


class XGrammar(Engine):
    name = "xgrammar"

    def __init__(self, vocab):
        import xgrammar
        from transformers import PreTrainedTokenizerFast

        super().__init__(vocab)
        self.xg = xgrammar
        hf = PreTrainedTokenizerFast(tokenizer_file=str(vocab.path / "tokenizer.json"), eos_token="<|im_end|>")
        info = xgrammar.TokenizerInfo.from_huggingface(hf, vocab_size=vocab.size, stop_token_ids=[vocab.eos])
        self.compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
        self.words = xgrammar.allocate_token_bitmask(1, vocab.size)

    def compile_json(self, schema):
        return self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)

    def compile_toolcall(self, schema):
        tag = self.xg.StructuralTagItem(begin="<function_calls>", schema=json.dumps(schema), end="</function_calls>")
        return self.compiler.compile_structural_tag([tag], ["<function_calls>"])

    def start(self, compiled):
        return self.xg.GrammarMatcher(compiled)

    def mask(self, state):
        state.fill_next_token_bitmask(self.words)
        w = self.words.numpy()[0].astype(np.int32)
        return np.unpackbits(w.view(np.uint8), bitorder="little")[: self.vocab.size].astype(bool)

    def advance(self, state, token):
        return state.accept_token(token)

    def finished(self, state):
        return state.is_terminated()


class OutlinesCore(Engine):
    name = "outlines-core"

    def __init__(self, vocab):
        import outlines_core

        super().__init__(vocab)
        self.oc = outlines_core
        ids: dict[bytes, list[int]] = {}
        for i, b in enumerate(vocab.bytes):
            if b and i != vocab.eos:
                ids.setdefault(b, []).append(i)
        self.vocabulary = outlines_core.Vocabulary(vocab.eos, ids)
        self.words = np.zeros((1, (vocab.size + 31) // 32), dtype=np.int32)

    def compile_json(self, schema):
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
        return self.oc.Index(regex, self.vocabulary)

    def compile_toolcall(self, schema):
        raise NotImplementedError("regular expressions only: no grammar for free text followed by a call")

    def start(self, compiled):
        return self.oc.Guide(compiled)

    def mask(self, state):
        state.write_mask_into(self.words.ctypes.data, self.words.size, self.words.itemsize)
        return np.unpackbits(self.words[0].view(np.uint8), bitorder="little")[: self.vocab.size].astype(bool)

    def advance(self, state, token):
        state.advance(token)
        return True

    def finished(self, state):
        return state.is_finished()


ENGINES = (LLGuidance, XGrammar, OutlinesCore)


def walk(engine: Engine, compiled, rnd: random.Random, steps: int = STEPS) -> tuple[bytes | None, list[float]]:
    """A random constrained walk; the bytes written when it ended, and the mask times."""
    state = engine.start(compiled)
    out, times = [], []
    for _ in range(steps):
        if engine.finished(state):
            return b"".join(out), times
        t0 = time.perf_counter()
        allowed = engine.mask(state)
        times.append(time.perf_counter() - t0)
        choices = np.flatnonzero(allowed)
        if not len(choices):
            return None, times
        closing = choices[engine.vocab.closing[choices]]
        pool = closing if len(closing) and rnd.random() < 0.5 else choices
        token = int(rnd.choice(list(pool)))
        if token == engine.vocab.eos:
            return b"".join(out), times
        if not engine.advance(state, token):
            return None, times
        out.append(engine.vocab.bytes[token])
    return (b"".join(out) if engine.finished(state) else None), times


def coverage(engine: Engine) -> tuple[str, str]:
    import jsonschema

    compiled_ok, enforced, failures = 0, 0, []
    for name, schema in schemas().items():
        print(f"  {engine.name}: {name}", end="\r", file=sys.stderr, flush=True)
        try:
            with time_limit(COMPILE_LIMIT):
                compiled = engine.compile_json(schema)
        except Exception as exc:
            failures.append(f"{name}: {str(exc).splitlines()[0][:80]}")
            continue
        compiled_ok += 1
        rnd = random.Random(0)
        bad = 0
        for _ in range(WALKS):
            text, _ = walk(engine, compiled, rnd)
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                bad += 1
                continue
            checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
            bad += any(True for _ in checker.iter_errors(value))
        enforced += bad == 0
        if bad:
            failures.append(f"{name}: {bad} invalid outputs")
    total = len(schemas())
    return f"{compiled_ok}/{total} compile, {enforced}/{total} never invalid", "; ".join(failures[:4]) or "-"


def mask_cost(engine: Engine) -> str:
    """Compile the whole tool list as one schema; the mean and worst time to compute a mask."""
    start = time.perf_counter()
    compiled = engine.compile_json(union_schema())
    compile_s = time.perf_counter() - start
    rnd = random.Random(1)
    times: list[float] = []
    while len(times) < STEPS:
        _, more = walk(engine, compiled, rnd, STEPS - len(times))
        times += more or [0.0]
    return f"{compile_s:.2f} s / {statistics.mean(times) * 1e6:.0f} µs mean, {max(times) * 1e3:.1f} ms max"


def in_child(work, seconds: int) -> str:
    """``work()`` in a forked process, given up after ``seconds`` (an engine's compile cannot be interrupted)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def run():
        try:
            results.put(work())
        except Exception as exc:
            results.put(f"failed: {str(exc).splitlines()[0][:60]}")

    child = context.Process(target=run, daemon=True)
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        return f"no result in {seconds} s (compile still running)"
    return results.get() if not results.empty() else "failed (no result)"


def main() -> None:
    import mlx.core as mx

    from trimkit.testing.grammar_models import build_big_vocab_model
    from trimkit.testing.tinymodel import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="trimkit-engines-"))
    small = Vocab(build_tiny_model(tmp / "tiny"))
    big = Vocab(build_big_vocab_model(tmp / "big"))
    print(f"vocabularies: tiny {small.size:,} tokens, big {big.size:,} tokens\n")
    rows = []
    for cls in ENGINES:
        print(f"{cls.name}...", file=sys.stderr, flush=True)
        try:
            engine, engine_big = cls(small), cls(big)
        except Exception as exc:
            print(f"{cls.name}: not usable here ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        cover, failures = coverage(engine)
        try:
            with time_limit(COMPILE_LIMIT):
                engine.compile_toolcall(union_schema())
            toolcall = "yes"
        except Exception as exc:
            toolcall = f"no ({str(exc).splitlines()[0][:60]})"
        print(f"  {cls.name}: the tool list on {big.size:,} tokens", file=sys.stderr, flush=True)
        cost = in_child(lambda: mask_cost(engine_big), COMPILE_LIMIT * 5)
        rows.append((cls.name, cover, toolcall, cost, failures))
    print(f"{'engine':<14} {'JSON Schema (26 schemas)':<36} {'free text + call':<18} {'150K vocab: compile / mask':<40}")
    for name, cover, toolcall, cost, _ in rows:
        print(f"{name:<14} {cover:<36} {toolcall[:18]:<18} {cost:<40}")
    for name, *_, failures in rows:
        print(f"  {name} failures: {failures}")
    print()
    mask_application(mx, big)


def mask_application(mx, vocab: Vocab) -> None:
    """Time each way of applying a 150 K-token mask to MLX logits on the default device."""
    rnd = np.random.default_rng(0)
    words = rnd.integers(-(2**31), 2**31 - 1, size=(1, (vocab.size + 31) // 32), dtype=np.int64).astype(np.int32)
    logits = mx.random.normal((1, vocab.size))
    mx.eval(logits)

    def numpy_where():
        allowed = np.unpackbits(words[0].view(np.uint8), bitorder="little")[: vocab.size].view(np.bool_)
        return mx.where(mx.array(allowed), logits, -mx.inf)

    def mlx_shifts():
        bits = (mx.array(words[0])[:, None] >> mx.arange(32, dtype=mx.int32)) & 1
        return mx.where(bits.reshape(-1)[: vocab.size].astype(mx.bool_), logits, -mx.inf)

    from trimkit.backends.mlx_grammar import mask_logits

    ways = {
        "byte rows added (trimkit)": lambda: mask_logits(logits, words[0]),
        "numpy unpack + mx.where": numpy_where,
        "mlx shifts + mx.where": mlx_shifts,
    }
    try:
        from xgrammar.kernels.apply_token_bitmask_mlx import apply_token_bitmask_mlx

        ways["xgrammar lookup table (mx.compile)"] = lambda: apply_token_bitmask_mlx(mx.array(words), logits, vocab.size)
    except Exception as exc:
        print(f"xgrammar's MLX op: unavailable ({type(exc).__name__})")
    for name, module in (("llguidance.mlx", "llguidance.mlx"), ("outlines_core.kernels.mlx", "outlines_core.kernels.mlx")):
        try:
            mod = __import__(module, fromlist=["apply_token_bitmask"])
            mx.eval(mod.apply_token_bitmask(logits, words))
            ways[f"{name} (Metal kernel)"] = lambda mod=mod: mod.apply_token_bitmask(logits, words)
        except Exception as exc:
            print(f"{name}: fails on {mx.default_device()} ({type(exc).__name__}: {str(exc).splitlines()[0][:70]})")
    reference = np.array(numpy_where())
    print(f"\napplying a {vocab.size:,}-token mask to MLX logits on {mx.default_device()}:")
    for name, fn in ways.items():
        same = np.array_equal(np.array(fn()), reference)
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            mx.eval(fn())
            times.append(time.perf_counter() - t0)
        print(f"  {name:<40} {statistics.median(times) * 1e6:7.0f} µs median  {'same result' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
