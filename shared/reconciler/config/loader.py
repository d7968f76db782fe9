"""Loading: defaults < file < environment, with one clear error for every bad value.

Environment variable names (see docs/configuration.md for the generated table):

- every key under ``reconciler:`` has the derived name ``BLACKSMITH_`` + the key path joined
  with ``_``, upper-cased: ``reconciler.apis.bosh.rate_limit.requests_per_second`` ->
  ``BLACKSMITH_RECONCILER_APIS_BOSH_RATE_LIMIT_REQUESTS_PER_SECOND``;
- the spec's irregular names are accepted too: ``BLACKSMITH_RECONCILER_BACKUP_RETENTION``
  (backup.retention_count), ``_BACKUP_COMPRESSION`` (compression_level), ``_BACKUP_CLEANUP``
  (cleanup_enabled);
- where a derived name is already the spec's name for another key, the nested key uses
  ``__`` between the path parts: ``reconciler.batch.size`` -> ``BLACKSMITH_RECONCILER_BATCH__SIZE``
  (``BLACKSMITH_RECONCILER_BATCH_SIZE`` is the spec's ``reconciler.batch_size``);
- single-endpoint overrides: ``BLACKSMITH_CF_<FIELD>``, ``BLACKSMITH_BOSH_<FIELD>``,
  ``BLACKSMITH_VAULT_<FIELD>`` (plus ``BLACKSMITH_VAULT_ADDR`` and Vault's own ``VAULT_ADDR``,
  ``VAULT_TOKEN``, ``VAULT_CACERT``, ``VAULT_NAMESPACE`` as fallbacks);
- ``BLACKSMITH_DEBUG`` turns debug on as well.

An empty environment variable counts as unset (templates pass "" for "not given").
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .. import env as envmod
from ..errors import ConfigError
from ..secrets import Secret
from . import models
from .effects import inert_warnings
from .models import Settings
from .types import Kind, parse_bool
from .yamlfile import Path, format_path, load_yaml

ENV_PREFIX = "BLACKSMITH_RECONCILER_"
CONFIG_SSM_ENV = "BLACKSMITH_RECONCILER_CONFIG_SSM"
CONFIG_FILE_ENV = "BLACKSMITH_RECONCILER_CONFIG_FILE"
CONFIG_SSM_ALIAS_ENV = "BLACKSMITH_CONFIG_PARAMETER"  # the SAM template's name for CONFIG_SSM
SECRETS_PREFIX_ENV = "BLACKSMITH_SECRETS_PREFIX"  # prepended to *_SECRET_NAME values
DEBUG_ENV = "BLACKSMITH_DEBUG"
# Names under our prefixes that are not configuration keys but are read elsewhere.
RESERVED_ENV = {CONFIG_SSM_ENV, CONFIG_FILE_ENV}

# The spec's tables name these keys irregularly; both names work.
SPEC_ENV_NAMES: dict[tuple[str, ...], str] = {
    ("backup", "retention_count"): "BLACKSMITH_RECONCILER_BACKUP_RETENTION",
    ("backup", "compression_level"): "BLACKSMITH_RECONCILER_BACKUP_COMPRESSION",
    ("backup", "cleanup_enabled"): "BLACKSMITH_RECONCILER_BACKUP_CLEANUP",
    ("backup", "backup_on_update"): "BLACKSMITH_RECONCILER_BACKUP_ON_UPDATE",
    ("backup", "backup_on_delete"): "BLACKSMITH_RECONCILER_BACKUP_ON_DELETE",
}
# Fallback names (lower precedence than BLACKSMITH_*; no conflict error between them).
VAULT_FALLBACK_ENV = {
    "address": ("VAULT_ADDR",),
    "token": ("VAULT_TOKEN",),
    "ca_cert": ("VAULT_CACERT",),
    "namespace": ("VAULT_NAMESPACE",),
}
ENDPOINT_SECTIONS: dict[str, type[BaseModel]] = {
    "cf": models.CFFoundation, "bosh": models.BoshDirector, "vault": models.VaultSettings}

log = logging.getLogger("reconciler.config")


@dataclass(frozen=True)
class EnvKey:
    """One configuration key with its environment variable names (the first is the canonical one)."""

    path: Path  # ("reconciler", "apis", "bosh", "timeout") or ("cf", 0, "api_url")
    names: tuple[str, ...]  # BLACKSMITH_* names; setting two of them differently is an error
    fallbacks: tuple[str, ...] = ()  # lower-precedence names from other tools (VAULT_ADDR)
    field: FieldInfo | None = None
    # Secret fields only: NAME_SECRET_NAME=x means NAME=secretsmanager:<BLACKSMITH_SECRETS_PREFIX>x
    secret_names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return format_path(self.path)


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _leaves(model: type[BaseModel], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], FieldInfo]]:
    out = []
    for name, info in model.model_fields.items():
        if _is_model(info.annotation):
            out.extend(_leaves(info.annotation, (*path, name)))
        else:
            out.append(((*path, name), info))
    return out


def reconciler_env_keys() -> list[EnvKey]:
    """Every ``reconciler.*`` key with its environment variable names, in model order."""
    leaves = _leaves(models.ReconcilerSettings, ())
    top_level = {"BLACKSMITH_RECONCILER_" + p[0].upper() for p, _ in leaves if len(p) == 1}
    top_level |= set(SPEC_ENV_NAMES.values())
    out = []
    for path, info in leaves:
        derived = "BLACKSMITH_RECONCILER_" + "_".join(path).upper()
        if len(path) > 1 and derived in top_level:
            derived = "BLACKSMITH_RECONCILER_" + "__".join(path).upper()
        names = (SPEC_ENV_NAMES[path], derived) if path in SPEC_ENV_NAMES else (derived,)
        out.append(EnvKey(("reconciler", *path), names, (), info))
    return out


def endpoint_env_keys() -> list[EnvKey]:
    """Single-endpoint overrides: BLACKSMITH_CF_*, BLACKSMITH_BOSH_*, BLACKSMITH_VAULT_*."""
    out = []
    for section, model in ENDPOINT_SECTIONS.items():
        # TLS fields (inherited, so first in the model) read better last.
        fields = sorted(model.model_fields.items(), key=lambda kv: kv[0] in ("ca_cert", "insecure_skip_verify"))
        for name, info in fields:
            names = [f"BLACKSMITH_{section.upper()}_{name.upper()}"]
            if section == "vault" and name == "address":
                names.append("BLACKSMITH_VAULT_ADDR")
            fallbacks = VAULT_FALLBACK_ENV.get(name, ()) if section == "vault" else ()
            path: Path = (section, name) if section == "vault" else (section, 0, name)
            secret_names = tuple(_secret_name_var(n) for n in names[:1]) if is_secret_field(info) else ()
            out.append(EnvKey(path, tuple(names), fallbacks, info, secret_names))
    return out


def _secret_name_var(name: str) -> str:
    """BLACKSMITH_CF_CLIENT_SECRET -> ..._CLIENT_SECRET_NAME; BLACKSMITH_VAULT_TOKEN -> ..._TOKEN_SECRET_NAME."""
    return f"{name}_NAME" if name.endswith("_SECRET") else f"{name}_SECRET_NAME"


def all_env_keys() -> list[EnvKey]:
    return reconciler_env_keys() + endpoint_env_keys()


# --- describing fields (errors and docs) ---------------------------------------------------


def field_at(path: Path) -> FieldInfo | None:
    """The pydantic field a (file/loc) path points to, or None."""
    model: Any = Settings
    info: FieldInfo | None = None
    for part in path:
        if isinstance(part, int):
            continue
        if not _is_model(model):
            return None
        fields = model.model_fields
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return info


def _inner_model(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(path: Path) -> type[BaseModel] | None:
    model: Any = Settings
    for part in path:
        if isinstance(part, int):
            continue
        info = _field_at_in(model, part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
        if model is None:
            return None
    return model


def _field_at_in(model: type[BaseModel], part: str) -> FieldInfo | None:
    fields = model.model_fields
    return fields.get(part) or next((f for f in fields.values() if f.alias == part), None)


def is_secret_field(info: FieldInfo | None) -> bool:
    if info is None:
        return False
    return any(a is Secret for a in _flatten_args(info.annotation))


def _flatten_args(annotation: Any) -> list[Any]:
    out = [annotation]
    for arg in typing.get_args(annotation):
        out.extend(_flatten_args(arg))
    return out


def describe_accepted(info: FieldInfo | None) -> str:
    """What a field accepts, in words: ``a whole number from 1 to 9``."""
    if info is None:
        return ""
    words = ""
    for meta in [*info.metadata, *_annotated_metadata(info.annotation)]:
        if isinstance(meta, Kind):
            words = meta.text
    lo = hi = None
    lo_strict = False
    for meta in info.metadata:
        if hasattr(meta, "ge"):
            lo = meta.ge
        if hasattr(meta, "gt"):
            lo, lo_strict = meta.gt, True
        if hasattr(meta, "le"):
            hi = meta.le
    if lo is not None and hi is not None:
        words += f" from {lo:g} to {hi:g}"
    elif lo is not None:
        words += f" > {lo:g}" if lo_strict else f" >= {lo:g}"
    if not words and typing.get_origin(info.annotation) is typing.Literal:
        words = "one of " + ", ".join(map(str, typing.get_args(info.annotation)))
    return words.strip()


def _annotated_metadata(annotation: Any) -> list[Any]:
    out = list(getattr(annotation, "__metadata__", ()))
    for arg in typing.get_args(annotation):
        out.extend(_annotated_metadata(arg))
    return out


# --- loading ---------------------------------------------------------------------------


class _Sources:
    """Where each value came from, for error messages."""

    def __init__(self, file_name: str, lines: dict[Path, int]):
        self.file_name = file_name
        self.lines = lines
        self.env: dict[Path, str] = {}

    def describe(self, path: Path) -> str:
        for cut in range(len(path), 0, -1):
            prefix = tuple(path[:cut])
            if prefix in self.env:
                return f"environment variable {self.env[prefix]}"
            if prefix in self.lines:
                where = f"{self.file_name} line {self.lines[prefix]}"
                return where if cut == len(path) else f"{where} ({format_path(prefix)})"
        # A section-level rule: name what set its parts.
        inner = sorted({n for p, n in self.env.items() if p[: len(path)] == path})
        if inner:
            return "set by environment variable " + ", ".join(inner)
        return "default"


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value


def _set_path(data: dict, path: Path, value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        if isinstance(part, int):
            node = node[part]
        else:
            nxt = node.get(part)
            if not isinstance(nxt, dict | list):
                nxt = {}
                node[part] = nxt
            node = nxt
    node[path[-1]] = value


def _apply_env(data: dict, env: Mapping[str, str], sources: _Sources, problems: list[str]) -> None:
    _refuse_unknown_names(env, problems)
    _one_endpoint_for_overrides(data, env, problems)
    _apply_env_keys(data, env, sources, problems)


def _refuse_unknown_names(env: Mapping[str, str], problems: list[str]) -> None:
    known: set[str] = {DEBUG_ENV, *RESERVED_ENV}
    for key in all_env_keys():
        known.update(key.names)
        known.update(key.secret_names)
    # Unknown names under our prefixes are typos: refuse rather than ignore them.
    for name in sorted(env):
        if name in known or not _env_value(env, name):
            continue
        if name.startswith(("BLACKSMITH_RECONCILER_", "BLACKSMITH_CF_", "BLACKSMITH_BOSH_", "BLACKSMITH_VAULT_")):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{name}: unknown environment variable{hint}; see docs/configuration.md for the list")


def _one_endpoint_for_overrides(data: dict, env: Mapping[str, str], problems: list[str]) -> None:
    """Single-endpoint variables (BLACKSMITH_CF_API_URL ...) need exactly one cf/bosh entry."""
    for section in ("cf", "bosh"):
        keys = [k for k in endpoint_env_keys() if k.path[0] == section]
        present = [(k, n) for k in keys for n in (*k.names, *k.secret_names) if _env_value(env, n) is not None]
        if not present:
            continue
        current = data.get(section)
        if not current:  # absent, empty or []
            current = data[section] = [{}]
        if not isinstance(current, list) or len(current) != 1:
            count = len(current) if isinstance(current, list) else "not a list of"
            problems.append(
                f"{', '.join(sorted({n for _, n in present}))}: single-endpoint overrides need exactly one "
                f"'{section}' entry in the file, found {count}; set the values in the file instead"
            )
            continue
        if not isinstance(current[0], dict):
            continue  # the model reports it


def _apply_env_keys(data: dict, env: Mapping[str, str], sources: _Sources, problems: list[str]) -> None:
    for key in all_env_keys():
        found = [(n, v) for n in key.names if (v := _env_value(env, n)) is not None]
        if len({v for _, v in found}) > 1:
            shown = "different values" if is_secret_field(key.field) else ", ".join(f"{n}={v!r}" for n, v in found)
            problems.append(f"{key.key}: set by {' and '.join(n for n, _ in found)} with {shown}; set only one")
            continue
        by_name = [(n, v) for n in key.secret_names if (v := _env_value(env, n)) is not None]
        if by_name and found:
            problems.append(f"{key.key}: set by both {found[0][0]} and {by_name[0][0]}; set only one")
            continue
        if by_name:
            prefix = (_env_value(env, SECRETS_PREFIX_ENV) or "").strip()
            found = [(by_name[0][0], f"secretsmanager:{prefix}{(by_name[0][1] or '').strip()}")]
        if not found:
            found = [(n, v) for n in key.fallbacks if (v := _env_value(env, n)) is not None][:1]
        if not found:
            continue
        name, text = found[0]
        value: str | Secret = text
        if key.path[0] in ("cf", "bosh"):
            current = data.get(key.path[0])
            if not (isinstance(current, list) and len(current) == 1 and isinstance(current[0], dict)):
                continue
        elif not _sections_are_mappings(data, key.path):
            continue
        if is_secret_field(key.field):
            try:
                value = Secret(text, origin=f"environment variable {name}")
            except ValueError as exc:
                problems.append(f"{key.key} = *** (environment variable {name}): {exc}")
                continue
        _set_path(data, key.path, value)
        sources.env[key.path] = name


def _sections_are_mappings(data: dict, path: Path) -> bool:
    node: Any = data
    for part in path[:-1]:
        node = node.get(part, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return False
    return True


def _format_error(err: ErrorDetails, sources: _Sources) -> str:
    loc: Path = tuple(err.get("loc", ()))
    # Drop validator-internal loc parts (e.g. "function-before[...]").
    loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "is-instance")))
    key = format_path(loc) or "(top level)"
    info = field_at(loc)
    where = sources.describe(loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1]) if len(loc) > 1 else Settings
        keys: list[str] = []
        if parent is not None:
            keys = [f.alias or n for n, f in parent.model_fields.items()]
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{key} ({where}): unknown key{hint}; accepted keys here: {', '.join(keys)}"
    if kind == "missing":
        accepted = describe_accepted(info)
        return f"{key} ({where}): required but missing; expected {accepted or 'a value'}"
    value = err.get("input")
    if is_secret_field(info) or isinstance(value, Secret):
        shown = "***"
    elif isinstance(value, dict | list):
        shown = "a " + type(value).__name__
    else:
        shown = repr(_without_userinfo(value))
        if len(shown) > 80:
            shown = shown[:77] + "..."
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    accepted = describe_accepted(info)
    if kind == "model_type" or kind == "dict_type":
        return f"{key} = {shown} ({where}): expected a mapping of keys"
    if kind in ("list_type",):
        return f"{key} = {shown} ({where}): expected a list"
    if isinstance(value, dict) and loc and isinstance(loc[-1], int) and info is not None:
        # a rule of one list item's model (e.g. a matching rule without an instance source)
        return f"{key} ({where}): {msg}"
    if isinstance(value, dict) and info is not None and _inner_model(info.annotation) is not None and not accepted:
        # a model-level rule (e.g. batch min_size <= size <= max_size)
        return f"{key} ({where}): {msg}"
    tail = f"; accepted: {accepted}" if accepted else ""
    return f"{key} = {shown} ({where}): {_short(msg)}{tail}"


def _short(msg: str) -> str:
    """pydantic's constraint wording, shortened (the accepted range follows anyway)."""
    if msg.startswith("Input should be greater") or msg.startswith("Input should be less"):
        return "out of range"
    if msg.startswith("Input should be "):
        return "must be " + msg[len("Input should be ") :]
    return msg


def load_settings(
    env: Mapping[str, str] | None = None,
    file_text: str | None = None,
    file_name: str = "blacksmith.conf",
) -> Settings:
    """Settings from defaults, then ``file_text`` (YAML), then ``env``.

    ``env`` None means the process environment (with the embedded engine's per-invocation
    overlay, see :mod:`reconciler.env`); pass ``{}`` for "no environment".

    Raises one :class:`ConfigError` listing every problem (key, value, source, what is accepted).
    """
    env = envmod.environ() if env is None else env
    problems: list[str] = []
    data: Any = {}
    lines: dict[Path, int] = {}
    warnings: list[str] = []
    if file_text is not None and file_text.strip():
        data, lines, warnings = load_yaml(file_text, file_name)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"invalid configuration: {file_name}: the top level is a {type(data).__name__}; "
                "accepted: a mapping with the sections reconciler, cf, bosh, vault"
            )
    sources = _Sources(file_name, lines)
    _single_endpoints_as_lists(data, lines)
    _empty_sections(data, ())
    _mark_secret_origins(data, sources)
    _apply_env(data, env, sources, problems)
    global_debug = _global_debug(env, problems)

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format_error(err, sources) for err in exc.errors(include_url=False))
    if problems:
        raise ConfigError(_join(problems))
    assert settings is not None
    settings._global_debug = global_debug
    settings._warnings = tuple(warnings)
    settings._source = file_name if file_text is not None else "defaults"
    return settings


def _single_endpoints_as_lists(data: dict, lines: dict[Path, int]) -> None:
    """A single 'cf:'/'bosh:' mapping means one entry; give it the list shape (and line keys)."""
    for section in ("cf", "bosh"):
        if isinstance(data.get(section), dict):
            data[section] = [data[section]]
            for path in [p for p in lines if p[:1] == (section,) and len(p) > 1]:
                lines[(section, 0, *path[1:])] = lines[path]
            if (section,) in lines:
                lines[(section, 0)] = lines[(section,)]


def _global_debug(env: Mapping[str, str], problems: list[str]) -> bool:
    """``BLACKSMITH_DEBUG`` as a boolean (a problem when it is not one)."""
    raw_debug = _env_value(env, DEBUG_ENV)
    if raw_debug is None:
        return False
    try:
        return parse_bool(raw_debug)
    except ValueError:
        problems.append(
            f"debug = {raw_debug!r} (environment variable {DEBUG_ENV}): not a boolean; "
            "accepted: true/false/yes/no/1/0"
        )
        return False


def _join(problems: list[str]) -> str:
    # Keep order, drop exact repeats.
    unique = list(dict.fromkeys(problems))
    if len(unique) == 1:
        return f"invalid configuration: {unique[0]}"
    return f"invalid configuration ({len(unique)} problems):\n  - " + "\n  - ".join(unique)


def _empty_sections(data: Any, path: Path) -> None:
    """``reconciler:`` with nothing under it means an empty section, not null."""
    if not isinstance(data, dict):
        return
    for key, value in list(data.items()):
        sub = (*path, key)
        info = field_at(sub)
        if value is None and info is not None and _is_model(info.annotation):
            data[key] = {}
        elif value is None and path == () and key in ("cf", "bosh"):
            data[key] = []
        elif isinstance(value, dict):
            _empty_sections(value, sub)


def _mark_secret_origins(data: Any, sources: _Sources, path: Path = ()) -> None:
    """Wrap secret strings from the file so resolution errors can name their line."""
    if isinstance(data, dict):
        for key, value in list(data.items()):
            sub = (*path, key)
            if isinstance(value, str) and is_secret_field(field_at(sub)) and value:
                with contextlib.suppress(ValueError):  # the model reports the bad value
                    data[key] = Secret(value, origin=sources.describe(sub))
            else:
                _mark_secret_origins(value, sources, sub)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _mark_secret_origins(value, sources, (*path, i))


# --- warnings ----------------------------------------------------------------------------


def config_warnings(settings: Settings) -> list[str]:
    """Everything an operator should see at every run: load warnings, insecure endpoints and
    keys set to values that cannot act here (``effects.inert_warnings``)."""

    return [*settings.load_warnings, *settings.security_warnings(), *inert_warnings(settings)]


def log_config_warnings(settings: Settings, logger: Any = None) -> list[str]:
    """Log :func:`config_warnings` at WARNING (Powertools Logger or stdlib logger) and return them."""
    logger = logger or log
    found = config_warnings(settings)
    for message in found:
        logger.warning(message)
    return found


# --- Lambda entry point ------------------------------------------------------------------

def read_source(env: Mapping[str, str]) -> tuple[str | None, str]:
    ssm_name = _env_value(env, CONFIG_SSM_ENV)
    alias = _env_value(env, CONFIG_SSM_ALIAS_ENV)
    if ssm_name and alias and ssm_name.strip() != alias.strip():
        raise ConfigError(
            f"invalid configuration: {CONFIG_SSM_ENV} and {CONFIG_SSM_ALIAS_ENV} name different parameters; "
            "set only one"
        )
    ssm_name = ssm_name or alias
    path = _env_value(env, CONFIG_FILE_ENV)
    if ssm_name and path:
        raise ConfigError(
            f"invalid configuration: both {CONFIG_SSM_ENV} (or {CONFIG_SSM_ALIAS_ENV}) and {CONFIG_FILE_ENV} "
            "are set; set only one"
        )
    if ssm_name:
        from aws_lambda_powertools.utilities import parameters  # cold start: only when SSM/Secrets Manager is named

        ssm_name = ssm_name.strip()
        try:
            text = parameters.get_parameter(ssm_name, decrypt=True, max_age=300)
        except Exception as exc:
            raise ConfigError(
                f"invalid configuration: cannot read SSM parameter {ssm_name!r} named by {CONFIG_SSM_ENV}: "
                f"{str(exc)[:300]}"
            ) from None
        return str(text), f"ssm:{ssm_name}"
    if path:
        path = path.strip()
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read(), path
        except OSError as exc:
            raise ConfigError(
                f"invalid configuration: cannot read {path!r} named by {CONFIG_FILE_ENV}: {exc.strerror}"
            ) from None
    return None, "blacksmith.conf"


def settings_from_environment(env: Mapping[str, str] | None = None) -> Settings:
    """The Lambda's settings, read anew at each call (the handler's ``Deps`` keeps them for the
    container's life: ``reconciler.phases.deps``).

    The YAML comes from the SSM parameter named by ``BLACKSMITH_RECONCILER_CONFIG_SSM`` or the
    file named by ``BLACKSMITH_RECONCILER_CONFIG_FILE`` (neither: defaults only); environment
    variables override it. ``env`` defaults to :func:`reconciler.env.environ` (the process
    environment plus the embedded engine's per-invocation overlay).
    """
    environ = envmod.environ() if env is None else env
    text, name = read_source(environ)
    return load_settings(environ, text, name)


def _without_userinfo(value: Any) -> Any:
    """``scheme://user:password@host`` -> ``scheme://***@host``: a URL's credentials never reach a message."""
    if isinstance(value, str) and "@" in value and "://" in value:
        scheme, _, rest = value.partition("://")
        authority, sep, tail = rest.partition("/")
        if "@" in authority:
            return f"{scheme}://***@{authority.rsplit('@', 1)[1]}{sep}{tail}"
    return value
