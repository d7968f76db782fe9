"""DynamoDB store: deployment-detail cache, metrics, run records, run lock, orphans,
per-run scratch data and the shared state of the resilience guards.

Two tables (names from ``CACHE_TABLE`` / ``STATE_TABLE``), both keyed ``pk`` (S) + ``sk`` (S)
with the TTL attribute ``expires_at`` (epoch seconds). DynamoDB deletes expired items lazily
(hours later, never under moto), so every read here filters on ``expires_at`` itself.

Item layout (``pk`` / ``sk``):

==========================  =============================  ===========================================
cache table                 ``deployment#<director>``       ``<deployment name>``: compressed detail
either table                ``chunk#<pk>#<sk>#<gen>``       ``00000``...: chunks of a large value
state table                 ``metrics``                     ``counters`` (ADD), ``gauges`` (SET),
                                                            ``histogram#run_duration``
state table                 ``errors``                      ``#seq`` counter, ``slot#NNNN`` ring buffer
state table                 ``runs``                        ``<started_at>#<run_id>`` (newest first)
state table                 ``runid``                       ``<run_id>`` -> the run's sort key
state table                 ``lock``                        ``run`` (lease in ``expires_at``)
state table                 ``orphans``                     ``state`` (compressed)
state table                 ``history#<instance id>``       ``<time>#<run_id>``: remediation events
state table                 ``scratch#<run_id>``            ``<key>`` (compressed, TTL)
state table                 ``guard``                       ``<api>:<endpoint>`` (resilience/state.py)
==========================  =============================  ===========================================

Large values (deployment details, scratch, orphans) are JSON compressed with zstandard;
above ~350 KB compressed they are split over chunk items written before the head item,
so a reader never sees a head whose chunks are missing (a new generation id per write).
"""

from __future__ import annotations

from .breakers import GuardStates
from .cache import DeploymentCache
from .findings import Findings
from .history import InstanceHistory
from .lock import RunLock
from .runs import RunRecords
from .scratch import Scratch
from .table import CHUNK_SIZE, DEFAULT_BUCKETS, INLINE_MAX, MAX_SORT_KEY_BYTES, Tables, create_tables, item_to_dict


class Store(DeploymentCache, RunRecords, RunLock, Findings, InstanceHistory, Scratch, GuardStates):
    """All DynamoDB access of the reconciler, one repository per concern over one table
    helper (``Tables``). Thread-safe (boto3 clients are)."""


__all__ = ["CHUNK_SIZE", "DEFAULT_BUCKETS", "INLINE_MAX", "MAX_SORT_KEY_BYTES", "DeploymentCache", "Findings",
           "GuardStates", "InstanceHistory", "RunLock", "RunRecords", "Scratch", "Store", "Tables", "create_tables",
           "item_to_dict"]
