"""Which models a server offers and which one answers a requested id (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import fake_model
from trimkit.backends.catalog import Catalog, discover, several_models
from trimkit.backends.footprint import read_footprint
from trimkit.backends.memory import memory_cap_bytes
from trimkit.backends.residency import MIN_WINDOW, Plan
from trimkit.config.settings import ModelSettings, ServerSettings
from trimkit.errors import ConfigError, ModelNotFoundError

MB = 10**6


def catalog(**settings) -> Catalog:
    return Catalog.from_settings(ServerSettings(**settings))


def families(cat: Catalog) -> dict[str, str]:
    return {family: cat.family(family).alias for family in ("opus", "sonnet", "haiku")}


# ---------------------------------------------------------------- which settings offer several models


def test_one_model_is_the_one_model_server_and_anything_more_is_several(tmp_path):
    big = str(fake_model(tmp_path / "big", 50 * MB))
    assert not several_models(ServerSettings(model=big))
    assert not several_models(ServerSettings(model=big, haiku_model="big", opus_model="*"))
    assert several_models(ServerSettings(model=big, haiku_model=str(tmp_path / "small")))
    assert several_models(ServerSettings(models=[big]))
    assert several_models(ServerSettings(model_dirs=[str(tmp_path)]))
    assert not several_models(ServerSettings(backend="replay", haiku_model="other"))


# ---------------------------------------------------------------- families


def test_two_models_opus_and_sonnet_to_the_big_one_haiku_to_the_small_one_in_either_order(tmp_path):
    small = str(fake_model(tmp_path / "small", 10 * MB))
    big = str(fake_model(tmp_path / "big", 50 * MB))
    for order in ([small, big], [big, small]):
        cat = catalog(models=order)
        assert families(cat) == {"opus": "big", "sonnet": "big", "haiku": "small"}
        assert cat.default.alias == "big"


def test_three_models_leave_the_middle_one_to_its_name(tmp_path):
    paths = [str(fake_model(tmp_path / name, size * MB)) for name, size in (("mid", 30), ("small", 10), ("big", 50))]
    cat = catalog(models=paths)
    assert families(cat) == {"opus": "big", "sonnet": "big", "haiku": "small"}
    assert cat.route("mid").alias == "mid"
    assert cat.route("claude-sonnet-4-6").alias == "big"


def test_families_given_in_the_tables_win_over_sizes(tmp_path):
    small = str(fake_model(tmp_path / "small", 10 * MB))
    big = str(fake_model(tmp_path / "big", 50 * MB))
    cat = catalog(models=[ModelSettings(model=big, families=["haiku"]), ModelSettings(model=small, alias="s")])
    assert families(cat) == {"opus": "s", "sonnet": "s", "haiku": "big"}


def test_a_family_setting_naming_another_model_adds_it_and_the_main_model_keeps_the_rest(tmp_path):
    main = str(fake_model(tmp_path / "main", 10 * MB))
    helper = str(fake_model(tmp_path / "helper", 40 * MB))  # larger, but the user said haiku
    cat = catalog(model=main, haiku_model=helper)
    assert [s.alias for s in cat.specs] == ["main", "helper"]
    assert families(cat) == {"opus": "main", "sonnet": "main", "haiku": "helper"}


def test_two_models_claiming_one_family_or_one_alias_are_configuration_errors(tmp_path):
    a = str(fake_model(tmp_path / "a", MB))
    b = str(fake_model(tmp_path / "b", MB))
    with pytest.raises(ConfigError, match="both 'a' and 'b' claim the haiku family"):
        catalog(models=[ModelSettings(model=a, families=["haiku"]), ModelSettings(model=b, families=["haiku"])])
    with pytest.raises(ConfigError, match="two models are called 'same'"):
        catalog(models=[ModelSettings(model=a, alias="same"), ModelSettings(model=b, alias="same")])


def test_a_configured_model_that_is_not_here_names_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    present = str(fake_model(tmp_path / "present", MB))
    with pytest.raises(ModelNotFoundError) as caught:
        catalog(models=[present, "mlx-community/not-downloaded-4bit"])
    assert caught.value.fix == "hf download mlx-community/not-downloaded-4bit"
    shown = Catalog.from_settings(ServerSettings(models=[present, "mlx-community/not-downloaded-4bit"]), strict=False)
    assert [s.alias for s in shown.specs] == ["present", "not-downloaded-4bit"]


# ---------------------------------------------------------------- routing


def test_the_one_model_server_lists_no_local_directory_but_always_the_backends_own_name(tmp_path):
    local = fake_model(tmp_path / "Qwen3-Coder-4bit", 10_000)
    mlx = Catalog.single("Qwen3-Coder-4bit", ServerSettings(model=str(local)))
    assert mlx.listed == ["Qwen3-Coder-4bit"]
    assert mlx.route(str(local)) is mlx.default  # still accepted when asked for by its path
    upstream = Catalog.single("/srv/engine/models/coder", ServerSettings(backend="openai"))  # the engine's id
    assert upstream.listed == ["/srv/engine/models/coder"]


def test_a_requested_id_is_routed_by_name_then_family_then_patterns(tmp_path):
    small = str(fake_model(tmp_path / "small", 10 * MB))
    big = str(fake_model(tmp_path / "big", 50 * MB))
    other = str(fake_model(tmp_path / "other", 20 * MB))
    cat = catalog(models=[big, small, ModelSettings(model=other, alias="gpt", patterns=["gpt-*"])],
                  model_patterns=["claude-*", "local-*"])
    routes = {requested: (cat.route(requested).alias if cat.route(requested) else None) for requested in [
        "small", small, "big", "gpt", "claude-haiku-4-5", "claude-3-5-haiku-latest", "claude-opus-4-8",
        "claude-sonnet-4-6", "gpt-4o", "claude-next", "local-thing", "mistral-large"]}
    assert routes == {
        "small": "small", small: "small", "big": "big", "gpt": "gpt",
        "claude-haiku-4-5": "small", "claude-3-5-haiku-latest": "small",
        "claude-opus-4-8": "big", "claude-sonnet-4-6": "big",
        "gpt-4o": "gpt", "claude-next": "big", "local-thing": "big", "mistral-large": None,
    }


# ---------------------------------------------------------------- folders


def test_lm_studio_hugging_face_cache_and_plain_folders_are_found_and_gguf_skipped(tmp_path):
    lm = tmp_path / "lmstudio"
    fake_model(lm / "mlx-community" / "Qwen3-4B-4bit", 2 * MB)
    (lm / "lmstudio-community" / "gguf-only").mkdir(parents=True)
    (lm / "lmstudio-community" / "gguf-only" / "model.gguf").write_bytes(b"GGUF")
    hf = tmp_path / "hub"
    repo = hf / "models--mlx-community--gpt-oss-20b-MXFP4-Q8"
    fake_model(repo / "snapshots" / "oldrev", MB)
    fake_model(repo / "snapshots" / "abc123", 3 * MB)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (hf / "datasets--someone--data").mkdir()
    plain = tmp_path / "plain"
    fake_model(plain / "my-model", MB)

    assert [(f.model, f.alias) for f in discover(lm)] == [("mlx-community/Qwen3-4B-4bit", "Qwen3-4B-4bit")]
    assert [(f.model, f.path.name, f.alias) for f in discover(hf)] == [
        ("mlx-community/gpt-oss-20b-MXFP4-Q8", "abc123", "gpt-oss-20b-MXFP4-Q8")]
    assert [f.alias for f in discover(plain)] == ["my-model"]

    cat = catalog(model_dirs=[str(lm), str(hf), str(plain)])
    assert [s.alias for s in cat.specs] == ["Qwen3-4B-4bit", "gpt-oss-20b-MXFP4-Q8", "my-model"]
    assert cat.route("mlx-community/gpt-oss-20b-MXFP4-Q8").alias == "gpt-oss-20b-MXFP4-Q8"
    assert families(cat) == {"opus": "gpt-oss-20b-MXFP4-Q8", "sonnet": "gpt-oss-20b-MXFP4-Q8", "haiku": "my-model"}


def test_a_folder_model_named_like_a_configured_one_keeps_its_full_id(tmp_path):
    mine = str(fake_model(tmp_path / "mine" / "Qwen3-4B-4bit", 2 * MB))
    folder = tmp_path / "lmstudio"
    fake_model(folder / "mlx-community" / "Qwen3-4B-4bit", 2 * MB)
    cat = catalog(model=mine, model_dirs=[str(folder)])
    assert [s.alias for s in cat.specs] == ["Qwen3-4B-4bit", "mlx-community/Qwen3-4B-4bit"]
    assert cat.route("Qwen3-4B-4bit").model == mine


def test_a_folder_is_offered_once_with_its_configured_models_first(tmp_path):
    folder = tmp_path / "models"
    a = fake_model(folder / "a", MB)
    fake_model(folder / "b", MB)
    cat = catalog(models=[str(a)], model_dirs=[str(folder)])
    assert [(s.alias, s.discovered) for s in cat.specs] == [("a", False), ("b", True)]
    assert families(cat)["haiku"] == "a"  # only configured models take families by size


def test_a_model_folder_that_is_not_there_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        catalog(model_dirs=[str(tmp_path / "nowhere")])


# ---------------------------------------------------------------- sizes, windows and the cap


def test_footprint_reads_weights_and_kv_per_token(tmp_path):
    path = fake_model(tmp_path / "m", 7 * MB, layers=4, kv_heads=2, head_dim=64, dtype="bfloat16")
    footprint = read_footprint(path)
    assert footprint.weights_bytes == 7 * MB
    assert footprint.kv_bytes_per_token == 2 * 4 * 2 * 64 * 2
    assert read_footprint(fake_model(tmp_path / "f32", MB, dtype="float32")).kv_bytes_per_token == 2 * 4 * 2 * 64 * 4


def test_a_window_that_does_not_fit_is_narrowed_and_a_model_that_does_not_fit_at_all_is_too_big(tmp_path):
    spec = catalog(models=[str(fake_model(tmp_path / "m", 100 * MB, window=262_144))]).specs[0]
    roomy = Plan.make(spec, window=None, prompt_cache_bytes=4 << 30, cap=10**12, scores=False)
    assert (roomy.window, roomy.narrowed_from, roomy.too_big) == (262_144, None, None)

    tight = Plan.make(spec, window=None, prompt_cache_bytes=4 << 30, cap=400 * MB, scores=False)
    assert tight.too_big is None and tight.narrowed_from == 262_144
    assert MIN_WINDOW <= tight.window < 262_144 and tight.window % 1024 == 0
    kv = spec.footprint.kv_bytes(tight.window)
    assert 100 * MB + 2 * kv + tight.working_bytes <= 400 * MB

    chosen = Plan.make(spec, window=200_000, prompt_cache_bytes=4 << 30, cap=400 * MB, scores=False)
    assert chosen.window == 200_000 and "lower its context_window" in chosen.too_big

    heavy = Plan.make(spec, window=None, prompt_cache_bytes=4 << 30, cap=50 * MB, scores=False)
    assert heavy.too_big.startswith("model m needs about") and "memory cap is 0.1 GB" in heavy.too_big
    assert "raise memory_cap, or choose a smaller model" in heavy.too_big


@pytest.mark.parametrize("setting, expected", [
    (None, 75 * 10**9), (25_769_803_776, 25_769_803_776), ("24GB", 24 * 10**9), ("24 GiB", 24 * 2**30),
    ("512mb", 512 * 10**6), ("60%", 60 * 10**9), ("1.5G", 1_500_000_000), ("123456", 123456),
])
def test_the_memory_cap_reads_bytes_units_and_shares(setting, expected):
    assert memory_cap_bytes(setting, total=100 * 10**9) == expected


@pytest.mark.parametrize("setting", ["lots", "24XB", "0%", "150%", "0", -5, "-3GB"])
def test_a_memory_cap_that_is_not_a_size_is_a_configuration_error(setting):
    with pytest.raises(ConfigError) as caught:
        memory_cap_bytes(setting, total=100 * 10**9)
    assert caught.value.key == "memory_cap"
