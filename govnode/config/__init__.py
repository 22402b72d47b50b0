"""Configuration: `govnode.toml` read into frozen typed objects."""

from govnode.config.errors import ConfigError
from govnode.config.load import CONFIG_NAME, PEERS_NAME, load_config, parse_config, read_toml
from govnode.config.model import Config

__all__ = [
    "CONFIG_NAME",
    "PEERS_NAME",
    "Config",
    "ConfigError",
    "load_config",
    "parse_config",
    "read_toml",
]
