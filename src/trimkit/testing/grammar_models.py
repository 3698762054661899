"""Tiny random models for testing and measuring constrained decoding.

``build_closing_model(dir)`` is the tiny random model of
:mod:`trimkit.testing.tinymodel` with ``</parameter>`` as one token and a logit
bonus on it (and smaller ones on ``"``, ``]`` and ``}``, which end JSON strings,
arrays and objects). A grammar can make every token a model
writes fit a call, but it cannot make a model *end* a free-text value: only the
model can write ``</parameter>``, and a random model over 768 tokens writes its
three pieces in a row about once in half a million steps; JSON strings and
arrays end, but only after hundreds of tokens. With the
bonus, values end after a few tokens, so a request finishes within its
``max_tokens`` and the structure the grammar enforces (names, types, required
arguments, enums, nesting) can be checked. Unconstrained, the model still
writes noise and never a valid call.

``build_family_closing_model(dir, family)`` does the same for a model of one
family of :mod:`trimkit.testing.families` (its special tokens and chat template,
random weights, no forced generation): the bonus goes to whatever ends that
family's values and reasoning (:data:`FAMILY_BONUS`): a raw-text value's closing
tag (merged into one token where it is text, as above), Gemma's ``<|"|>``, the
tokens that close reasoning (``</think>``, harmony's ``<|end|>``, ``<channel|>``,
``[/THINK]``), and ``"``, ``]`` and ``}`` for JSON. All get the same bonus: the
logits are scaled up after the constant channel, so of two bonus tokens allowed
at once the larger bonus wins nearly every time, and a reasoning close is text
inside a value (and a value's close text inside reasoning) in some families.

``build_big_vocab_model(dir)`` has a 150 K-token vocabulary, the size of Qwen's
and Llama 3's (151,936 and 128,256): the cost of computing and applying a mask
grows with the vocabulary, so the decode-speed ratio is measured on this shape
too. Its byte-level BPE is the tiny model's, grown by merging existing tokens
into longer ones (words, words with a leading space, code fragments) until it
has the requested size; every merge is a real BPE merge, so ``tokenizers``,
mlx-lm and llguidance all load it as they would a real one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .tinymodel import build_tiny_model

CLOSING_TAG = "</parameter>"
CLOSING_BONUS = {CLOSING_TAG: 5.0, '"': 2.5, ']': 2.5, '}': 2.5}
BIG_VOCAB = 150_000


END = 5.0
FAMILY_ENDS: dict[str, tuple[str, ...]] = {
    "gemma4": ('<|"|>', "<channel|>"),
    "gpt_oss": ("<|end|>",),
    "glm47": ("</arg_value>", "</think>"),
    "minimax_m2": (CLOSING_TAG, "</think>"),
    "qwen3_coder": ("\n" + CLOSING_TAG,),
    "qwen3": ("\n" + CLOSING_TAG, "</think>"),
    "qwen2_5_coder": (),
    "devstral": ("[/THINK]",),
    "llama3": (),
    "deepseek": ("</think>",),
}
FAMILY_BONUS: dict[str, dict[str, float]] = {
    name: {token: END for token in (*ends, '"', "]", "}")} for name, ends in FAMILY_ENDS.items()
}
"""Per family, the tokens that end its values and reasoning (besides JSON's), each raised by :data:`END`."""


def bias_tokens(path: str | Path, bonus: dict[str, float]) -> None:
    """Raise the logits of the given tokens of a model built with ``eos_bias`` > 0.

    Such a model keeps hidden dimension 0 as a constant channel that every output
    row reads through the tied embedding; setting a token's entry there to
    ``1 + bonus`` raises its logit by about ``bonus``, like the end-of-sequence
    token's.
    """
    import mlx.core as mx

    path = Path(path)
    data = json.loads((path / "tokenizer.json").read_text())
    weights = dict(mx.load(str(path / "model.safetensors")))
    embed = weights["model.embed_tokens.weight"]
    for token, amount in bonus.items():
        index = token_id(data, token)
        if index is None:
            raise KeyError(f"no single token {token!r} in {path}")
        embed[index, 0] = 1.0 + amount
    weights["model.embed_tokens.weight"] = embed
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})


def merge_words(tokenizer_json: dict, words: list[str]) -> dict:
    """``tokenizer_json`` with merges that make each of ``words`` a single token.

    The word's current pieces are joined left to right (``</`` + ``parameter``,
    then that + ``>``); each join is a BPE merge, so the tokenizer writes the word
    as one token wherever it appears. ``tokenizers`` numbers added tokens that are
    not in the model's vocabulary after it, so those move up to make room.
    """
    from tokenizers import Tokenizer

    model = tokenizer_json["model"]
    vocab, merges = model["vocab"], model["merges"]
    pair_form = bool(merges) and isinstance(merges[0], list)
    for word in words:
        tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
        pieces = tokenizer.encode(word, add_special_tokens=False).tokens
        joined = pieces[0]
        for piece in pieces[1:]:
            merges.append([joined, piece] if pair_form else f"{joined} {piece}")
            joined += piece
            vocab.setdefault(joined, len(vocab))
    next_id = len(vocab)
    for token in tokenizer_json.get("added_tokens", []):
        if token["content"] not in vocab:
            token["id"] = next_id
            next_id += 1
    return tokenizer_json


def build_closing_model(path: str | Path, *, eos_bias: float = 2.0, **options) -> Path:
    """The tiny random model, ``</parameter>`` one token, with the bonuses of :data:`CLOSING_BONUS`."""
    path = build_tiny_model(path, eos_bias=eos_bias, **options)
    data = merge_words(json.loads((path / "tokenizer.json").read_text()), [CLOSING_TAG])
    _resize(path, data, options.get("seed", 0))
    bias_tokens(path, CLOSING_BONUS)
    return path


def build_family_closing_model(path: str | Path, family: str, **options) -> Path:
    """A tiny random model of ``family`` whose values and reasoning end (:data:`FAMILY_BONUS`).

    A bonus token the vocabulary does not hold is made one by merges (a text
    closing tag such as ``</parameter>``).
    """
    from .families import build_family_model

    path = build_family_model(path, family, eos_bias=2.0, **options)
    bonus = FAMILY_BONUS[family]
    data = json.loads((path / "tokenizer.json").read_text())
    missing = [word for word in bonus if token_id(data, word) is None]
    if missing:
        _resize(path, merge_words(data, missing), options.get("seed", 0))
    bias_tokens(path, bonus)
    return path


def token_id(tokenizer_json: dict, text: str) -> int | None:
    """The id of the one token whose text is ``text``, or None.

    Added tokens are stored as their text; a byte-level BPE vocabulary spells
    every byte as a printable character (GPT-2's table: ``\n`` is ``Ċ``).
    """
    for token in tokenizer_json.get("added_tokens", []):
        if token["content"] == text:
            return token["id"]
    vocab = tokenizer_json["model"]["vocab"]
    if (tokenizer_json.get("pre_tokenizer") or {}).get("type") == "ByteLevel":
        table = _bytes_to_unicode()
        text = "".join(table[b] for b in text.encode())
    return vocab.get(text)


def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    for n, b in enumerate(b for b in range(256) if b not in printable):
        printable.append(b)
        chars.append(256 + n)
    return {b: chr(c) for b, c in zip(printable, chars)}


def grow_vocabulary(tokenizer_json: dict, size: int, *, seed: int = 0) -> dict:
    """``tokenizer_json`` (a byte-level BPE) with merges added until the vocabulary has ``size`` tokens.

    Each new token joins two existing ones, favouring pieces that make word-like
    and code-like strings, as a trained vocabulary has: letters onto letters, a
    leading space (``Ġ``) onto a word, punctuation onto either.
    """
    model = tokenizer_json["model"]
    vocab: dict[str, int] = model["vocab"]
    merges: list = model["merges"]
    pair_form = bool(merges) and isinstance(merges[0], list)
    added = {t["content"] for t in tokenizer_json.get("added_tokens", [])}
    pieces = [t for t in vocab if t not in added]
    words = [t for t in pieces if t.isalpha()]
    starts = [t for t in pieces if t.startswith("Ġ") and t[1:].isalpha()] or words
    rnd = random.Random(seed)
    next_id = max(vocab.values()) + 1
    while len(vocab) < size:
        roll = rnd.random()
        if roll < 0.45:
            left, right = rnd.choice(starts), rnd.choice(words)
        elif roll < 0.85:
            left, right = rnd.choice(words), rnd.choice(words)
        else:
            left, right = rnd.choice(pieces), rnd.choice(pieces)
        token = left + right
        if token in vocab or len(token) > 24:
            continue
        vocab[token] = next_id
        next_id += 1
        merges.append([left, right] if pair_form else f"{left} {right}")
        (starts if token.startswith("Ġ") else words if token.isalpha() else pieces).append(token)
    return tokenizer_json


def build_big_vocab_model(path: str | Path, *, vocab: int = BIG_VOCAB, **options) -> Path:
    """The tiny random model with a ``vocab``-token vocabulary (150 K by default)."""
    path = build_tiny_model(path, **options)
    data = grow_vocabulary(json.loads((path / "tokenizer.json").read_text()), vocab)
    _resize(path, data, options.get("seed", 0))
    return path


def _size(tokenizer_json: dict) -> int:
    """One past the highest token id, added tokens included."""
    ids = [*tokenizer_json["model"]["vocab"].values(), *(t["id"] for t in tokenizer_json.get("added_tokens", []))]
    return max(ids) + 1


def _resize(path: Path, tokenizer_json: dict, seed: int) -> None:
    """Write a grown tokenizer, and random embedding rows for its new tokens (the head is tied to them).

    A model with a constant channel (``eos_bias``) keeps it: the new rows hold 1 there.
    """
    import mlx.core as mx

    size = _size(tokenizer_json)
    (path / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
    config = json.loads((path / "config.json").read_text())
    config["vocab_size"] = size
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    weights = dict(mx.load(str(path / "model.safetensors")))
    embed = weights["model.embed_tokens.weight"]
    mx.random.seed(seed + 1)
    extra = mx.random.normal((size - embed.shape[0], embed.shape[1]), dtype=embed.dtype) * mx.std(embed)
    if mx.all(embed[:, 0] >= 1.0).item():
        extra[:, 0] = 1.0
    weights["model.embed_tokens.weight"] = mx.concatenate([embed, extra], axis=0)
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
