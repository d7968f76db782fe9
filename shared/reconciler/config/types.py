"""Value parsers and annotated field types shared by the configuration models.

Every parser takes what YAML or an environment variable gives (str, int, float, bool)
and either returns the typed value or raises ``ValueError`` with a short reason; the
loader adds the key, the value's source and what is accepted.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le
from pydantic import BeforeValidator

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-zA-Zµ]+)")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
AGE_UNITS = {**UNITS, "d": 86400.0}
# Upper bounds no real setting reaches: beyond them a value is a typo, and it would break
# Step Functions (TimeoutSecondsPath, Map limits) or DynamoDB numbers far from the config.
MAX_WHOLE = 2**31 - 1
MAX_DURATION_S = 366 * 86400.0
TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0"}


def parse_age(value: Any) -> float:
    """A duration that may also count days: ``30d``, ``1d12h``, ``90m`` (float seconds)."""
    return parse_duration(value, units=AGE_UNITS)


def parse_duration(value: Any, units: dict[str, float] | None = None) -> float:
    """``500ms``, ``15s``, ``30m``, ``1h``, ``1h30m``, ``1.5s`` or a plain number of seconds -> float seconds."""
    units = units or UNITS
    if isinstance(value, bool):
        raise ValueError("a boolean is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty")
        if text.startswith("-"):
            raise ValueError("negative")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for part in _PART.finditer(text):
                if part.start() != pos:
                    break
                unit = part.group(2)
                if unit not in units:
                    raise ValueError(f"unknown unit {unit!r}")
                seconds += float(part.group(1)) * units[unit]
                pos = part.end()
            if pos != len(text) or pos == 0:
                raise ValueError("not a duration")
    else:
        raise ValueError("not a duration")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("not a finite duration")
    if seconds < 0:
        raise ValueError("negative")
    if seconds > MAX_DURATION_S:
        raise ValueError("too long (at most 366 days)")
    return seconds


def parse_bool(value: Any) -> bool:
    """``true/false/yes/no/1/0`` (any case) or a YAML boolean -> bool. Anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
    raise ValueError("not a boolean")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        result = value
    elif (isinstance(value, float) and value.is_integer()
          or isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value)):
        result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        raise ValueError(f"too large (at most {MAX_WHOLE})")
    else:
        raise ValueError("not a whole number")
    if abs(result) > MAX_WHOLE:
        raise ValueError(f"too large (at most {MAX_WHOLE})")
    return result


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | float) or isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        result = float(value)
    else:
        raise ValueError("not a number")
    if math.isnan(result) or math.isinf(result):
        raise ValueError("not a finite number")
    return result


def parse_str(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ValueError("not a string (quote it in YAML)")


def parse_str_list(value: Any) -> list[str]:
    """A YAML list of strings, or a comma-separated string (environment variables)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"item {i} is not a non-empty string")
            out.append(item.strip())
        return out
    raise ValueError("not a list of strings")


def parse_str_map(value: Any) -> dict[str, str]:
    """A YAML mapping of strings, or ``key=value,key=value`` (environment variables)."""
    if isinstance(value, str):
        out: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip() or not val.strip():
                raise ValueError(f"{item.strip()!r} is not key=value")
            out[key.strip()] = val.strip()
        return out
    if isinstance(value, dict):
        out = {}
        for key, val in value.items():
            if not isinstance(key, str) or not isinstance(val, str) or not key.strip() or not val.strip():
                raise ValueError(f"entry {key!r} is not a non-empty string: string pair")
            out[key.strip()] = val.strip()
        return out
    raise ValueError("not a mapping of strings")


class Kind:
    """Marks a field type with the words used in error messages and the docs."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Kind({self.text!r})"


DURATION_TEXT = "a duration (500ms, 15s, 30m, 1h, 1h30m) or a number of seconds"

Bool = Annotated[bool, BeforeValidator(parse_bool), Kind("true/false/yes/no/1/0")]
Int = Annotated[int, BeforeValidator(parse_int), Kind("a whole number")]
PosInt = Annotated[int, BeforeValidator(parse_int), Ge(1), Kind("a whole number")]
NonNegInt = Annotated[int, BeforeValidator(parse_int), Ge(0), Kind("a whole number")]
Port = Annotated[int, BeforeValidator(parse_int), Ge(1), Le(65535), Kind("a TCP port number")]
Level = Annotated[int, BeforeValidator(parse_int), Ge(1), Le(9), Kind("a whole number")]
PosFloat = Annotated[float, BeforeValidator(parse_float), Gt(0), Kind("a number")]
Fraction = Annotated[float, BeforeValidator(parse_float), Ge(0), Le(1), Kind("a number")]
Multiplier = Annotated[float, BeforeValidator(parse_float), Ge(1), Kind("a number")]
Duration = Annotated[float, BeforeValidator(parse_duration), Ge(0), Kind(DURATION_TEXT)]
PosDuration = Annotated[float, BeforeValidator(parse_duration), Gt(0), Kind(DURATION_TEXT)]
Age = Annotated[float, BeforeValidator(parse_age), Ge(0), Kind("a duration with days (30d, 1d12h, 90m) or seconds")]
Str = Annotated[str, BeforeValidator(parse_str), Kind("a string")]
StrList = Annotated[list[str], BeforeValidator(parse_str_list), Kind("a list of strings (env: comma-separated)")]
StrMap = Annotated[
    dict[str, str], BeforeValidator(parse_str_map), Kind("a mapping of strings (env: key=value,key=value)")
]
