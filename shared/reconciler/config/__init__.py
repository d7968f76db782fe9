"""Configuration: ``blacksmith.conf`` (YAML) + ``BLACKSMITH_*`` environment variables + defaults.

Public API (see docs/configuration.md)::

    load_settings(env=None, file_text=None, file_name="blacksmith.conf") -> Settings
    settings_from_environment(env=None) -> Settings  # Lambdas (their Deps keeps it per container)
    config_warnings(settings) / log_config_warnings(settings, logger=None)
    parse_duration(value) -> float seconds, parse_bool(value) -> bool
"""

from .loader import (
    CONFIG_FILE_ENV,
    CONFIG_SSM_ENV,
    DEBUG_ENV,
    EnvKey,
    all_env_keys,
    config_warnings,
    endpoint_env_keys,
    load_settings,
    log_config_warnings,
    reconciler_env_keys,
    settings_from_environment,
)
from .models import (
    API_DEFAULTS,
    DEFAULT_EXCLUDED_DEPLOYMENTS,
    DEFAULT_RELEASE_SERVICES,
    Apis,
    ApiSettings,
    Backup,
    Batch,
    BoshDirector,
    BoshScan,
    CFFoundation,
    CircuitBreaker,
    Concurrency,
    Matching,
    Metrics,
    RateLimit,
    ReconcilerSettings,
    Retry,
    Settings,
    Timeouts,
    VaultSettings,
)
from .types import parse_bool, parse_duration

__all__ = [
    "API_DEFAULTS",
    "CONFIG_FILE_ENV",
    "CONFIG_SSM_ENV",
    "DEBUG_ENV",
    "DEFAULT_EXCLUDED_DEPLOYMENTS",
    "DEFAULT_RELEASE_SERVICES",
    "ApiSettings",
    "Apis",
    "Backup",
    "Batch",
    "BoshDirector",
    "BoshScan",
    "CFFoundation",
    "CircuitBreaker",
    "Concurrency",
    "EnvKey",
    "Matching",
    "Metrics",
    "RateLimit",
    "ReconcilerSettings",
    "Retry",
    "Settings",
    "Timeouts",
    "VaultSettings",
    "all_env_keys",
    "config_warnings",
    "endpoint_env_keys",
    "load_settings",
    "log_config_warnings",
    "parse_bool",
    "parse_duration",
    "reconciler_env_keys",
    "settings_from_environment",
]
