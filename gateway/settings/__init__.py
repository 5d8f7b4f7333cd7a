"""Configuration: the YAML schema and whole-or-nothing loading."""

from gateway.settings.loader import (
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    load_config,
    parse_config,
)
from gateway.settings.schema import GatewaySettings, ModelSettings, UpstreamSettings

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "GatewaySettings",
    "LoadedConfig",
    "ModelSettings",
    "UpstreamSettings",
    "load_config",
    "parse_config",
]
