"""A tiny random model whose tokenizer compresses text about as a production one does.

The tiny model of :mod:`trimkit.testing.tinymodel` has 768 tokens trained on a
few dozen lines, so it reads code at 1.6–2 characters a token where production
tokenizers are usually quoted at 3.5–4. Figures that depend on how big a turn is against the
window (the share of a prompt served from the KV cache, how often a long session
must be cut) come out worse on it than on a real model. Growing its vocabulary
with random merges (:func:`trimkit.testing.grammar_models.build_big_vocab_model`)
does not help: the new tokens are rarely in real text.

``build_corpus_model(dir)`` trains the same kind of byte-level BPE on real text
that is on every machine, the Python standard library's source (code and
docstrings, about 30 MB; nothing is downloaded), with a 65,536-token
vocabulary, and puts it in the tiny random model (same shape, chat template and
special tokens). Its weights are still random; only the tokenizer is realistic.
The corpus depends on the Python that builds it, so the figure a benchmark
reports should come with :func:`chars_per_token` measured on its own text.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from .tinymodel import train_tokenizer, write_chatml_model

CORPUS_VOCAB = 65_536
CORPUS_CHARS = 40_000_000


def standard_library_text(max_chars: int = CORPUS_CHARS) -> str:
    """The Python standard library's ``.py`` files (sorted by path, installed packages left out),
    up to about ``max_chars`` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or total >= max_chars:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        texts.append(text)
        total += len(text)
    return "".join(texts)


def build_corpus_model(path: str | Path, *, vocab: int = CORPUS_VOCAB, max_chars: int = CORPUS_CHARS,
                       layers: int = 2, hidden: int = 64, heads: int = 1, head_dim: int = 32, seed: int = 0) -> Path:
    """Write the tiny random model with a ``vocab``-token BPE trained on the standard library."""
    tokenizer = train_tokenizer(vocab, text=standard_library_text(max_chars))
    return write_chatml_model(path, tokenizer, layers=layers, hidden=hidden, heads=heads, head_dim=head_dim,
                              vocab=tokenizer.get_vocab_size(), seed=seed)


def chars_per_token(model_dir: str | Path, text: str) -> float:
    """How many characters of ``text`` the model's tokenizer reads per token."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    return len(text) / max(1, len(tokenizer.encode(text, add_special_tokens=False).ids))
