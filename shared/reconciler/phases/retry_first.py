"""What the last run could not do, tried first by the next one.

Finish stores the instances it did not reconcile (failed alone, or in a batch that was not
processed) and the deployments whose scan failed; DiscoverBosh puts those deployments at the
front of the scan, Match those instances at the front of the apply batches (so, with the
limits and the run's time, they are the first to get another chance, not the last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .contracts import CARRYOVER, CARRYOVER_TTL_S, RETRY_FIRST

T = TypeVar("T")
KEY = RETRY_FIRST
MAX_IDS = 5000  # bounded: a run where everything failed keeps the first of them


def put(store: Any, *, instances: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
    record = {"instances": sorted(set(instances))[:MAX_IDS], "deployments": sorted(set(deployments))[:MAX_IDS]}
    store.put_scratch(CARRYOVER, KEY, record, CARRYOVER_TTL_S)


def get(store: Any) -> dict[str, list[str]]:
    record = store.get_scratch(CARRYOVER, KEY) or {}
    return {k: [str(x) for x in record.get(k) or []] for k in ("instances", "deployments")} \
        if isinstance(record, dict) else {"instances": [], "deployments": []}


def first(items: list[T], wanted: Iterable[str], key: Callable[[T], str]) -> list[T]:
    """``items`` with those whose key is in ``wanted`` moved to the front (both in their order)."""
    wanted = set(wanted)
    if not wanted:
        return items
    return [i for i in items if key(i) in wanted] + [i for i in items if key(i) not in wanted]
