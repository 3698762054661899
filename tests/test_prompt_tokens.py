"""Rendered prompts tokenized piece by piece between special tokens: the same ids, new pieces only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("tokenizers")

from tokenizers import AddedToken

from trimkit.backends.prompt_tokens import CHECKED_PROMPTS, PromptTokenizer
from trimkit.testing.tinymodel import SPECIAL_TOKENS, train_tokenizer

STYLES = ("byte_level", "spm")
TOKENIZERS = {style: train_tokenizer(400, style=style) for style in STYLES}


def chatml(messages: list[tuple[str, str]], generation: bool = True) -> str:
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)
    return text + ("<|im_start|>assistant\n" if generation else "")


def whole(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def pieces_of(tokenizer, special=SPECIAL_TOKENS) -> PromptTokenizer:
    return PromptTokenizer(lambda text: whole(tokenizer, text), special)


contents = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["", " ", "\n", "  leading spaces", "trailing  ", "<|im_end|> quoted", "def f():\n    return 1\n", "ünïcode ✓"]
)


@pytest.mark.parametrize("style", STYLES)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), contents), min_size=1, max_size=8))
def test_pieces_between_special_tokens_give_the_whole_prompts_tokens(style, messages):
    tokenizer = TOKENIZERS[style]
    text = chatml(messages)
    assert pieces_of(tokenizer)(text) == whole(tokenizer, text)


@pytest.mark.parametrize("style", STYLES)
def test_a_later_turn_tokenizes_only_its_new_messages(style):
    tokenizer = TOKENIZERS[style]
    prompts = pieces_of(tokenizer)
    messages = [("system", "You are a coding agent. " * 40), ("user", "Fix the rounding bug. " * 20)]
    prompts(chatml(messages))
    for turn in range(10):
        new = [("assistant", f"Reading file {turn}."), ("user", f"line {turn}: total = round(total, 2)\n" * 30)]
        messages += new
        before = prompts.encoded_chars
        text = chatml(messages)
        assert prompts(text) == whole(tokenizer, text)
        new_chars = sum(len(content) for _, content in new)
        if turn >= CHECKED_PROMPTS:  # the first prompts are tokenized whole too, to check the pieces
            assert prompts.encoded_chars - before <= new_chars + 80  # the new messages and their role lines
    assert prompts.piecewise is True
    again = prompts.encoded_chars
    assert prompts(text) == whole(tokenizer, text) and prompts.encoded_chars == again  # asked twice: nothing new


def test_a_tokenizer_whose_special_tokens_eat_spaces_is_used_whole():
    tokenizer = train_tokenizer(400, special_tokens=())
    tokenizer.add_special_tokens([AddedToken(t, lstrip=True, rstrip=True) for t in SPECIAL_TOKENS])
    prompts = pieces_of(tokenizer)
    for messages in ([("user", "hi  ")], [("user", "hi  "), ("assistant", "  there ")], [("user", "again ")]):
        text = chatml(messages)
        assert prompts(text) == whole(tokenizer, text)
    assert prompts.piecewise is False


def test_without_special_tokens_a_prompt_is_tokenized_whole():
    tokenizer = TOKENIZERS["byte_level"]
    prompts = pieces_of(tokenizer, special=())
    text = chatml([("user", "hello"), ("assistant", "hi")])
    assert prompts(text) == whole(tokenizer, text) and prompts.encoded_chars == len(text)
