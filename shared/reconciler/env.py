"""The one way reconciler code reads its environment.

On AWS every Lambda is its own process, so ``os.environ`` is the function's environment.
The embedded engine (``mockstack/aws.py``) runs every function of the template in one
process, Map iterations in threads; it cannot swap ``os.environ`` per invocation without
races. It instead sets a per-invocation *overlay* (a ``ContextVar``, so each thread sees
only its own) with the function's ``Environment`` variables. Code that needs a setting
calls :func:`get` (or :func:`environ` for a mapping view): the overlay first, then
``os.environ``.

Libraries that read ``os.environ`` themselves (boto3, Powertools) see only the process
environment; the engine sets the values common to every function there once.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_overlay: ContextVar[Mapping[str, str] | None] = ContextVar("reconciler_env_overlay", default=None)


def get(name: str, default: str | None = None) -> str | None:
    """The value of ``name``: this invocation's overlay first, then the process environment."""
    layer = _overlay.get()
    if layer is not None and name in layer:
        return layer[name]
    return os.environ.get(name, default)


def environ() -> Mapping[str, str]:
    """A read-only merged view (overlay over ``os.environ``), e.g. for ``load_settings(env=...)``."""
    layer = _overlay.get()
    if layer is None:
        return os.environ
    return ChainMap(dict(layer), os.environ)


@contextmanager
def overlay(variables: Mapping[str, str]) -> Iterator[None]:
    """Run a block with ``variables`` layered over the process environment (this context only)."""
    token = _overlay.set({str(k): str(v) for k, v in variables.items()})
    try:
        yield
    finally:
        _overlay.reset(token)
