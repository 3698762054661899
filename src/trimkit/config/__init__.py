"""Configuration: the server's settings, and where each value came from (file, environment, flags).

:class:`~trimkit.config.settings.ServerSettings` declares every setting;
:mod:`~trimkit.config.loader` reads them from ``trimkit.toml``, ``TRIMKIT_*``
variables and command-line flags.
"""

from .loader import (
    Config,
    ConfigFileError,
    add_setting_flags,
    config_as_dict,
    env_name,
    find_config_file,
    flag_name,
    format_config,
    load_config,
    overrides_from_args,
    user_config_path,
)
from .settings import ServerSettings

__all__ = [
    "Config",
    "ConfigFileError",
    "ServerSettings",
    "add_setting_flags",
    "config_as_dict",
    "env_name",
    "find_config_file",
    "flag_name",
    "format_config",
    "load_config",
    "overrides_from_args",
    "user_config_path",
]
