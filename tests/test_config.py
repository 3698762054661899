"""Configuration loading: file lookup, precedence, the [stages] table, error messages, display."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimkit.config import loader as cfg
from trimkit.config import ConfigFileError, find_config_file, format_config, load_config
from trimkit.config.settings import ServerSettings


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty working directory and a fake home; tests pass ``env`` explicitly."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def env_for(home: Path, **variables: str) -> dict[str, str]:
    return {"HOME": str(home), **variables}


def file_error(home: Path, toml: str) -> tuple[Path, ConfigFileError]:
    """Write ./trimkit.toml; return it and the error that loading it raises."""
    file = write(home / "work" / "trimkit.toml", toml)
    with pytest.raises(ConfigFileError) as caught:
        load_config(env=env_for(home))
    return file, caught.value


# ---------------------------------------------------------------- precedence


def test_each_layer_overrides_the_one_before(home):
    file = write(
        home / "work" / "trimkit.toml",
        """
        host = "127.0.0.2"
        port = 9001
        model = "file-model"
        log_level = "info"
        """,
    )
    env = env_for(home, TRIMKIT_PORT="9002", TRIMKIT_MODEL="env-model", TRIMKIT_MAX_QUEUE="3")
    config = load_config(env=env, overrides={"port": 9003, "model": None, "tier": "small"})

    expected = {
        "backend": ("mlx", "default"),
        "host": ("127.0.0.2", f"file {file}:1"),
        "log_level": ("info", f"file {file}:4"),
        "model": ("env-model", "env TRIMKIT_MODEL"),
        "max_queue": (3, "env TRIMKIT_MAX_QUEUE"),
        "port": (9003, "flag --port"),
        "tier": ("small", "flag --tier"),
    }
    for key, (value, source) in expected.items():
        assert (getattr(config.settings, key), config.sources[key]) == (value, source), key
    assert config.path == file
    assert set(config.sources) == {f.name for f in msgspec.structs.fields(ServerSettings)}


def test_no_file_gives_the_struct_defaults(home):
    config = load_config(env=env_for(home))
    assert config.path is None
    assert config.settings == ServerSettings()
    assert set(config.sources.values()) == {"default"}


def test_env_converts_to_the_field_type(home):
    env = env_for(
        home,
        TRIMKIT_PING_INTERVAL="2.5",
        TRIMKIT_MODEL_PATTERNS="claude-*, gpt-* ,",
        TRIMKIT_CONTEXT_WINDOW="32768",
    )
    settings = load_config(env=env).settings
    assert settings.ping_interval == 2.5
    assert settings.model_patterns == ["claude-*", "gpt-*"]
    assert settings.context_window == 32768


def test_empty_env_value_unsets_an_optional_field(home):
    write(home / "work" / "trimkit.toml", 'api_key = "from-file"\n')
    config = load_config(env=env_for(home, TRIMKIT_API_KEY=""))
    assert config.settings.api_key is None
    assert config.sources["api_key"] == "env TRIMKIT_API_KEY"


def test_unknown_env_variables_are_listed_not_used(home):
    config = load_config(env=env_for(home, TRIMKIT_PROT="1", TRIMKIT_CONFIG=""))
    assert config.unknown_env == ("TRIMKIT_PROT",)
    assert "TRIMKIT_PROT names no setting (did you mean TRIMKIT_PORT?)" in format_config(config)


# ---------------------------------------------------------------- lookup


def test_local_file_comes_before_the_user_config_dir(home):
    user = write(home / ".config" / "trimkit" / "config.toml", "port = 1\n")
    local = write(home / "work" / "trimkit.toml", "port = 2\n")
    assert find_config_file(env=env_for(home)) == local
    local.unlink()
    assert find_config_file(env=env_for(home)) == user
    assert load_config(env=env_for(home)).settings.port == 1


def test_xdg_config_home_wins_over_home(home):
    xdg = write(home / "xdg" / "trimkit" / "config.toml", "port = 3\n")
    write(home / ".config" / "trimkit" / "config.toml", "port = 1\n")
    assert find_config_file(env=env_for(home, XDG_CONFIG_HOME=str(home / "xdg"))) == xdg
    # The XDG spec says a relative value is to be ignored.
    assert find_config_file(env=env_for(home, XDG_CONFIG_HOME="xdg")) == home / ".config/trimkit/config.toml"


def test_trimkit_config_and_the_path_argument_name_a_file(home):
    write(home / "work" / "trimkit.toml", "port = 2\n")
    named = write(home / "named.toml", "port = 4\n")
    given = write(home / "given.toml", "port = 5\n")
    env = env_for(home, TRIMKIT_CONFIG=str(named))
    assert load_config(env=env).settings.port == 4
    assert load_config(str(given), env=env).settings.port == 5


@pytest.mark.parametrize("variable", [True, False])
def test_a_named_file_that_is_missing_is_an_error(home, variable):
    missing = home / "nope.toml"
    with pytest.raises(ConfigFileError, match="nope.toml, which is not a file"):
        if variable:
            load_config(env=env_for(home, TRIMKIT_CONFIG=str(missing)))
        else:
            load_config(missing, env=env_for(home))


# ---------------------------------------------------------------- the [stages] table


def test_stages_table_passes_through(home):
    file = write(
        home / "work" / "trimkit.toml",
        """
        port = 9000

        [stages]
        order = ["client_noise", "system_prompt", "tools", "budget", "reminders"]
        disabled = ["reminders"]
        """,
    )
    config = load_config(env=env_for(home))
    assert config.stages == {
        "order": ["client_noise", "system_prompt", "tools", "budget", "reminders"],
        "disabled": ["reminders"],
    }
    assert config.stages is config.settings.stages
    assert config.sources["stages"] == f"file {file}:3"


@pytest.mark.parametrize(
    ("toml", "message", "line"),
    [
        ('[stages]\norder = ["tools"]\n\n[stages.nosuch]\nx = 1\n', "stages.nosuch: no stage of that name", 4),
        ('[stages]\ndisabled = [\n  "nosuch",\n]\n', "stages.disabled names unknown stage(s): nosuch", 2),
        ("port = 1\n[stages.tools]\n\nno_such_option = 1\n", "stages.tools.no_such_option: unknown option", 4),
        ("[stages]\ntools.no_such_option = 1\n", "stages.tools.no_such_option: unknown option", 2),
        ('stages = { order = ["nosuch"] }\n', "stages.order names unknown stage(s): nosuch", 1),
        ('[stages.budget]\nenabled = true\ndrop_step = "lots"\n',
         "stages.budget.drop_step: expected `int | float`, got `str`", 3),
        ("[stages.budget.small]\nmin_output_tokens = -5\n",
         "stages.budget.small.min_output_tokens: expected `int` >= 1", 2),
        ('[stages.tools]\nallow = "Read"\n', "stages.tools.allow: expected `array`, got `str`", 2),
        ('[stages.reminders.large.actions]\nweather = "drop"\n',
         "stages.reminders.large.actions.weather: unknown option", 2),
    ],
)
def test_bad_stage_table_names_file_and_line(home, toml, message, line):
    file, error = file_error(home, toml)
    assert str(error) == f"{message} at {file} line {line}"
    assert (error.path, error.line) == (file, line)


def test_bad_stage_table_from_a_flag_names_the_flag(home):
    with pytest.raises(ConfigFileError, match=r"no stage of that name \(from flag --stages\)"):
        load_config(env=env_for(home), overrides={"stages": {"nosuch": {}}})


# ---------------------------------------------------------------- errors in the file


def test_syntax_error_names_file_and_line(home):
    file, error = file_error(home, 'host = "x"\nport = \n')
    assert str(error).startswith(f"invalid TOML in {file}: ")
    assert "line 2" in str(error)
    assert str(error).endswith("2 | port = ")
    assert error.line == 2


def test_unknown_key_suggests_the_closest(home):
    file, error = file_error(home, "# comment\n\nprot = 9000\n")
    assert str(error) == f"unknown key 'prot' at {file} line 3; did you mean 'port'?"
    assert (error.key, error.line) == ("prot", 3)


def test_unknown_table_without_a_close_match(home):
    file, error = file_error(home, "port = 1\n\n[xyzzy]\na = 1\n")
    assert str(error) == f"unknown key 'xyzzy' at {file} line 3"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('host = "h"\nport = "abc"\n', "'port' at {file} line 2 must be an integer, got string"),
        ("port = true\n", "'port' at {file} line 1 must be an integer, got boolean"),
        ("ping_interval = [1]\n", "'ping_interval' at {file} line 1 must be a number, got array of integer"),
        ('model_patterns = ["a", 2]\n', "'model_patterns' at {file} line 1 must be a list of strings, got array of integer/string"),
        ("model = 7\n", "'model' at {file} line 1 must be a string, got integer"),
        ("stages = 3\n", "'stages' at {file} line 1 must be a table, got integer"),
    ],
)
def test_wrong_type_in_the_file(home, toml, message):
    file, error = file_error(home, toml)
    assert str(error) == message.format(file=file)


def test_a_multiline_string_does_not_confuse_line_numbers(home):
    file, error = file_error(home, 'script = """\nport = 1\n"""\nport = "x"\n')
    assert str(error).startswith(f"'port' at {file} line 4 ")


def test_a_multiline_array_does_not_confuse_line_numbers(home):
    toml = '[stages.tools]\nallow = [\n  ["Read"],\n]\nno_such_option = 1\n'
    file, error = file_error(home, toml)
    assert str(error) == f"stages.tools.no_such_option: unknown option at {file} line 5"


# ---------------------------------------------------------------- errors in env and flags


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRIMKIT_PORT", "abc", "TRIMKIT_PORT='abc' must be an integer"),
        ("TRIMKIT_PORT", "", "TRIMKIT_PORT='' must be an integer"),
        ("TRIMKIT_PING_INTERVAL", "fast", "TRIMKIT_PING_INTERVAL='fast' must be a number"),
        ("TRIMKIT_CONTEXT_WINDOW", "8k", "TRIMKIT_CONTEXT_WINDOW='8k' must be an integer"),
    ],
)
def test_bad_env_value(home, variable, value, message):
    with pytest.raises(ConfigFileError) as caught:
        load_config(env=env_for(home, **{variable: value}))
    assert str(caught.value) == message


def test_tables_do_not_come_from_env(home):
    config = load_config(env=env_for(home, TRIMKIT_STAGES="anything"))
    assert config.stages == {}
    assert config.unknown_env == ("TRIMKIT_STAGES",)


def test_bad_and_unknown_flags(home):
    with pytest.raises(ConfigFileError, match="^--max-queue must be an integer, got string$"):
        load_config(env=env_for(home), overrides={"max_queue": "many"})
    with pytest.raises(ConfigFileError, match="^--prot is not a setting$"):
        load_config(env=env_for(home), overrides={"prot": 1})


def test_flags_from_an_argparse_namespace(home):
    import argparse

    args = argparse.Namespace(port=9005, host=None, json=True, config=None, func=print)
    overrides = cfg.overrides_from_args(args)
    assert overrides == {"port": 9005, "host": None}
    config = load_config(env=env_for(home), overrides=overrides)
    assert (config.settings.port, config.settings.host) == (9005, "127.0.0.1")


# ---------------------------------------------------------------- new fields need no change


def test_a_new_settings_field_is_a_key_a_variable_and_a_flag(home, monkeypatch):
    class Extended(ServerSettings, kw_only=True, forbid_unknown_fields=True):
        retries: int = 3
        verbose: bool = False
        extra_headers: list[str] = msgspec.field(default_factory=list)

    monkeypatch.setattr(cfg, "ServerSettings", Extended)
    cfg._field_types.cache_clear()
    cfg._fields.cache_clear()
    try:
        write(home / "work" / "trimkit.toml", "verbose = true\nretries = 4\n")
        config = load_config(env=env_for(home, TRIMKIT_RETRIES="5", TRIMKIT_EXTRA_HEADERS="a,b"))
        assert (config.settings.verbose, config.settings.retries) == (True, 5)
        assert config.settings.extra_headers == ["a", "b"]
        assert config.sources["retries"] == "env TRIMKIT_RETRIES"
        with pytest.raises(ConfigFileError, match="TRIMKIT_VERBOSE='maybe' must be true or false"):
            load_config(env=env_for(home, TRIMKIT_VERBOSE="maybe"))
    finally:
        cfg._field_types.cache_clear()
        cfg._fields.cache_clear()


# ---------------------------------------------------------------- showing the configuration


def test_format_config_masks_the_key_and_shows_sources(home):
    file = write(home / "work" / "trimkit.toml", 'api_key = "sk-secret"\nport = 9000\n')
    config = load_config(env=env_for(home, TRIMKIT_MODEL="mlx-community/Qwen"), overrides={"tier": "small"})
    text = format_config(config)
    lines = text.splitlines()
    assert "sk-secret" not in text
    assert lines[0] == f"# config file: {file}"
    assert any(line.startswith('api_key = "***"') and line.endswith(f"# from file {file}:1") for line in lines)
    assert any(line.startswith("port = 9000") and line.endswith(f"# from file {file}:2") for line in lines)
    assert any(line.startswith('model = "mlx-community/Qwen"') and line.endswith("# from env TRIMKIT_MODEL") for line in lines)
    assert any(line.startswith('tier = "small"') and line.endswith("# from flag --tier") for line in lines)
    assert any(line.startswith("backend = ") and line.endswith("# from default") for line in lines)


def test_format_config_says_when_the_key_is_unset(home):
    text = format_config(load_config(env=env_for(home)))
    assert "# api_key is not set" in text
    assert "***" not in text


def test_format_config_output_is_toml_that_loads_back_the_same(home):
    write(
        home / "work" / "trimkit.toml",
        """
        port = 9000
        model_patterns = ["claude-*", "o\\"dd"]
        ping_interval = 2.5

        [stages]
        disabled = ["reminders"]

        [stages."tools"]
        small = {}
        """,
    )
    config = load_config(env=env_for(home))
    dumped = write(home / "dumped.toml", format_config(config))
    assert load_config(dumped, env=env_for(home)).settings == config.settings


def test_config_as_dict_is_json_with_the_key_masked(home):
    config = load_config(env=env_for(home, TRIMKIT_API_KEY="sk-secret", TRIMKIT_PORT="9000"))
    data = json.loads(json.dumps(cfg.config_as_dict(config)))
    assert data["settings"]["api_key"] == "***"
    assert data["settings"]["port"] == 9000
    assert data["sources"]["port"] == "env TRIMKIT_PORT"
    assert data["path"] is None


# ---------------------------------------------------------------- line finding


_keys = st.sampled_from(["host", "port", "model", "tier", "log_level", "backend", "script"])
_filler = st.sampled_from(["", "# a comment", "   ", "# port = 1"])


@given(st.lists(st.tuples(_keys, st.lists(_filler, max_size=2)), unique_by=lambda kv: kv[0], min_size=1))
def test_every_file_source_names_the_line_the_key_is_on(layout):
    lines: list[str] = []
    where: dict[str, int] = {}
    for key, filler in layout:
        lines += filler
        value = 1 if key == "port" else '"x"'
        lines.append(f"{key} = {value}")
        where[key] = len(lines)
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)
    found = cfg._KeyLines(text)
    assert {key: found.line(key) for key in where} == where


# ---------------------------------------------------------------- flags for every setting


def test_add_setting_flags_keeps_the_commands_own_options():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--capture", "--capture-dir", dest="capture_dir")
    cfg.add_setting_flags(parser)
    args = parser.parse_args(["--port", "9006", "--max-queue", "2", "--model-patterns", "a-*,b-*"])
    assert cfg.overrides_from_args(args)["capture_dir"] is None
    config = load_config(env={"HOME": "/nonexistent"}, overrides=cfg.overrides_from_args(args))
    assert (config.settings.port, config.settings.max_queue) == (9006, 2)
    assert config.settings.model_patterns == ["a-*", "b-*"]
    assert config.sources["model_patterns"] == "flag --model-patterns"
    assert "--stages" not in parser.format_help()


# ---------------------------------------------------------------- the reference stays true

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_the_reference_lists_every_setting():
    rows = {line.split("|")[1].strip().strip("`") for line in DOC.read_text().splitlines() if line.startswith("| `")}
    assert rows == {f.name for f in msgspec.structs.fields(ServerSettings)}
    for name in cfg._env_fields():
        assert f"`{cfg.env_name(name)}`" in DOC.read_text()


def test_the_reference_example_file_loads(home):
    blocks = DOC.read_text().split("```toml\n")[1:]
    assert blocks
    for block in blocks:
        file = write(home / "example.toml", block.split("```")[0])
        config = load_config(file, env=env_for(home))
        assert config.stages == tomllib.loads(file.read_text()).get("stages", {})
