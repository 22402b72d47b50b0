"""Configuration: `govnode.toml` read into frozen typed objects."""

from govnode.config.errors import ConfigError
from govnode.config.load import CONFIG_NAME, load_config, parse_config
from govnode.config.model import Config

__all__ = ["CONFIG_NAME", "Config", "ConfigError", "load_config", "parse_config"]
