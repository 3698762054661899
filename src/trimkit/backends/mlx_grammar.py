"""Grammars applied to an MLX model's logits with llguidance, one token at a time.

:class:`GrammarEngine` holds, for one model, llguidance's view of its tokenizer
(built once, on first use: about a second for a 150 K vocabulary) and the
grammars compiled so far, least recently used first out. A grammar is compiled
once per distinct text (so once per distinct tool list); each request gets a
cheap copy of the compiled matcher.

:class:`GrammarProcessor` is an mlx-lm logits processor. mlx-lm calls it with
all tokens so far before sampling each token: it feeds the newest token to the
matcher and masks every token the grammar does not allow at -inf. The mask is
llguidance's bit set (32 tokens a word) read a byte at a time: each byte
indexes a 256 × 8 table of 0 and -inf, and the looked-up rows are added to the
logits. That is plain MLX indexing, so it runs on the CPU and on Metal alike
(llguidance's and outlines-core's own MLX helpers are Metal kernels, which
mlx[cpu] lacks), and on a 150 K vocabulary it takes a quarter of the time of
unpacking the bits with NumPy and an ``mx.where``
(``benchmarks/bench_constrain_engines.py`` measures the alternatives).

Nothing here fails a request: a grammar the engine refuses (recursion it does
not support, limits on size) is logged and the request is generated without one.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("trimkit.constrain")

DEFAULT_CACHE_ENTRIES = 16


def llg_tokenizer(tokenizer: Any, vocab_size: int):
    """llguidance's tokenizer for an mlx-lm ``TokenizerWrapper``, sized to the model's logits."""
    import llguidance

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    backend = copy.copy(hf.backend_tokenizer)  # the Rust tokenizer, added tokens included
    backend.no_padding()
    backend.no_truncation()
    eos = sorted(getattr(tokenizer, "eos_token_ids", None) or [hf.eos_token_id])
    return llguidance.LLTokenizer(backend.to_str(), n_vocab=vocab_size, eos_token=eos)


class GrammarEngine:
    """llguidance for one model: its tokenizer, and compiled grammars in a bounded cache."""

    def __init__(self, tokenizer: Any, vocab_size: int, *, cache_entries: int = DEFAULT_CACHE_ENTRIES):
        self._hf_tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.cache_entries = max(1, cache_entries)
        self._tokenizer = None
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._special: dict[tuple[str, ...], dict[str, int]] = {}
        self._lock = threading.Lock()
        self.last_compile_seconds: float | None = None
        self.compiles = 0

    @property
    def tokenizer(self):
        """llguidance's tokenizer, built on first use (:meth:`prepare` builds it ahead)."""
        if self._tokenizer is None:
            self._tokenizer = llg_tokenizer(self._hf_tokenizer, self.vocab_size)
        return self._tokenizer

    def prepare(self) -> None:
        """Build the tokenizer now (the model loader calls this), logging rather than raising."""
        try:
            self.tokenizer
        except Exception as exc:
            log.warning("constrained decoding unavailable for this model: %s", _first_line(exc))

    def special_ids(self, markers: Sequence[str]) -> dict[str, int]:
        """Which of ``markers`` the tokenizer holds as one special token, with its id.

        A grammar must name such a marker as that token: llguidance never matches a
        special token against text. Asked of llguidance's own view of the tokenizer,
        which keeps every added token apart (Qwen's ``<tool_call>``, which the
        tokenizer does not call special, too), so the grammar and the engine agree.
        """
        key = tuple(markers)
        with self._lock:
            found = self._special.get(key)
        if found is None:
            try:
                tokenizer = self.tokenizer
            except Exception:  # no tokenizer, no grammar: processor() logs why
                return {}
            found = {}
            for marker in key:
                ids = tokenizer.tokenize_str(marker)
                if len(ids) == 1 and tokenizer.is_special_token(ids[0]):
                    found[marker] = ids[0]
            with self._lock:
                self._special[key] = found
        return found

    def matcher(self, grammar: str):
        """A fresh matcher for ``grammar``; raises ``ValueError`` with the engine's reason if it is refused."""
        import llguidance

        with self._lock:
            compiled = self._compiled.get(grammar)
            if compiled is not None:
                self._compiled.move_to_end(grammar)
                return compiled.deep_copy()
        start = time.perf_counter()
        compiled = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if compiled.is_error():
            raise ValueError(compiled.get_error())
        self.last_compile_seconds = time.perf_counter() - start
        self.compiles += 1
        with self._lock:
            self._compiled[grammar] = compiled
            while len(self._compiled) > self.cache_entries:
                self._compiled.popitem(last=False)
        return compiled.deep_copy()

    def processor(self, grammar: str, what: str = "") -> "GrammarProcessor | None":
        """A logits processor for ``grammar``, or None (logged) when the engine cannot compile it."""
        try:
            matcher = self.matcher(grammar)
        except Exception as exc:  # a refused grammar must never fail the request
            log.warning("constrained decoding off for this request (%s): %s", what or "grammar", _first_line(exc))
            return None
        return GrammarProcessor(matcher, self.vocab_size, what)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def unpack_mask(words: np.ndarray, vocab_size: int) -> np.ndarray:
    """llguidance's bit set (bit ``i % 32`` of word ``i // 32`` allows token ``i``) as booleans."""
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size].view(np.bool_)


_byte_rows: dict[Any, Any] = {}


def byte_rows(dtype: Any) -> Any:
    """The 256 × 8 table of additive masks, one row per byte value, in ``dtype`` (made once per dtype)."""
    import mlx.core as mx

    if dtype not in _byte_rows:
        bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(bool)
        _byte_rows[dtype] = mx.array(np.where(bits, 0.0, -np.inf).astype(np.float32)).astype(dtype)
    return _byte_rows[dtype]


def mask_logits(logits: Any, words: np.ndarray) -> Any:
    """``logits`` with every token the bit set ``words`` leaves out at -inf.

    Each byte of the bit set selects a row of eight additive masks (0 or -inf,
    lowest bit first); the rows laid end to end cover the vocabulary.
    """
    import mlx.core as mx

    width = logits.shape[-1]
    bias = byte_rows(logits.dtype)[mx.array(words.view(np.uint8))].reshape(-1)
    if bias.shape[0] < width:  # logits wider than the tokenizer's vocabulary: those tokens are never allowed
        bias = mx.concatenate([bias, mx.full((width - bias.shape[0],), -mx.inf, dtype=logits.dtype)])
    return logits + bias[:width]


class GrammarProcessor:
    """An mlx-lm logits processor that keeps the output inside one grammar.

    mlx-lm's first call passes the prompt; every later call ends with the token
    sampled last, which the matcher consumes before the next mask is computed.
    Once the grammar is complete only end-of-sequence tokens remain. If the
    matcher ever fails (it should not: every sampled token was allowed), the rest
    of the generation goes unconstrained and the failure is logged.
    """

    def __init__(self, matcher: Any, vocab_size: int, what: str = ""):
        self.matcher = matcher
        self.vocab_size = vocab_size
        self.what = what
        self.steps = 0
        self.active = True
        self._words = np.full((vocab_size + 31) // 32, -1, dtype=np.int32)
        self._address = self._words.ctypes.data

    def __call__(self, tokens: Any, logits: Any) -> Any:
        if not self.active:
            return logits
        if self.steps and not self.matcher.is_stopped():
            if not self.matcher.consume_token(int(tokens[-1].item())):
                return self._give_up(logits, self.matcher.get_error() or "token refused")
        self.steps += 1
        self.matcher.unsafe_compute_mask_ptr(self._address, self._words.nbytes)
        if self.matcher.is_error():
            return self._give_up(logits, self.matcher.get_error())
        return mask_logits(logits, self._words)

    @property
    def accepting(self) -> bool:
        return self.matcher.is_accepting()

    def _give_up(self, logits: Any, reason: str) -> Any:
        self.active = False
        log.warning("constrained decoding stopped mid-generation (%s): %s", self.what or "grammar", reason[:300])
        return logits
