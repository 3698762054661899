import json

import pytest

pytest.importorskip("mlx_lm")

import mlx_lm
from tokenizers import Tokenizer

from tests.fixtures.sources import paths, python_module
from trimkit.testing.corpus_model import build_corpus_model, chars_per_token, standard_library_text
from trimkit.testing.tinymodel import EOS_TOKEN, SPECIAL_TOKENS


@pytest.fixture(scope="module")
def corpus_model_dir(tmp_path_factory):
    return build_corpus_model(tmp_path_factory.mktemp("corpus") / "model", vocab=8192, max_chars=2_000_000)


def test_the_corpus_is_the_standard_librarys_code():
    text = standard_library_text(1_000_000)
    assert 1_000_000 <= len(text) < 3_000_000
    assert "def " in text and "import " in text
    assert text == standard_library_text(1_000_000)


def test_its_tokenizer_reads_code_in_fewer_tokens_than_the_tiny_models(corpus_model_dir, tiny_model_dir):
    code = "".join(python_module(paths("src", 1, i)[0], 1500) for i in range(10))
    trained, tiny = chars_per_token(corpus_model_dir, code), chars_per_token(tiny_model_dir, code)
    assert trained > 1.4 * tiny
    assert trained > 2.5


def test_it_is_the_tiny_model_with_another_tokenizer(corpus_model_dir, tiny_model_dir):
    tokenizer = Tokenizer.from_file(str(corpus_model_dir / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 8192
    for special in SPECIAL_TOKENS:
        assert len(tokenizer.encode(special, add_special_tokens=False).ids) == 1
    config = json.loads((corpus_model_dir / "config.json").read_text())
    tiny = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["vocab_size"] == 8192
    assert config["eos_token_id"] == tokenizer.token_to_id(EOS_TOKEN)
    assert {k: v for k, v in config.items() if k not in ("vocab_size", "eos_token_id")} == {
        k: v for k, v in tiny.items() if k not in ("vocab_size", "eos_token_id")}
    model, wrapper = mlx_lm.load(str(corpus_model_dir))
    assert model.args.vocab_size == 8192
    text = wrapper.apply_chat_template([{"role": "user", "content": "def f(): pass"}], add_generation_prompt=True,
                                       tokenize=False)
    assert text == "<|im_start|>user\ndef f(): pass<|im_end|>\n<|im_start|>assistant\n"
