"""The contracts between the states: every scratch key (here and nowhere else) and the
models of what each state reads from and returns to the state machine.

Scratch: a state leaves large values in the store (``scratch#<run_id>`` / key, with a TTL)
and passes only small references through Step Functions (256 KB payload limit). The keys,
by who writes them:

=============================  ==================  =============================================
key                            written by          read by
=============================  ==================  =============================================
``cf``                         DiscoverCF          Match, SyncIndex
``bosh``                       DiscoverBosh        ScanBatch, Match
``scan#<b>``                   ScanBatch           Match
``scan#<b>#figures``           ScanBatch           Match, Finish
``apply#<b>#items``            Match               ApplyBatch, Finish
``apply#<b>#figures``          ApplyBatch          SyncIndex, Finish
``<key>#progress``             a batch that stops  the same batch, invoked again
``match``, ``index``           Match               SyncIndex
``flags``                      Match               ApplyBatch, SyncIndex
``orphans``                    SyncIndex           Orphans
``plan#apply#<b>#<offset>``,   ApplyBatch,         Finish (dry run: the plan)
``plan#index``,                SyncIndex,
``plan#remediation``           Orphans
``archive#<instance id>``      Orphans             Orphans retried: finishes an interrupted archive
``plan``                       Finish              the API (``GET /b/runs/{id}/plan``)
=============================  ==================  =============================================

The carry-over partition (``carryover`` instead of a run id) holds what one run leaves for
the next (``bosh_cursor``, ``retry_first``).
"""

from __future__ import annotations

from typing import Any

from ..ports import ScratchStore

CARRYOVER = "carryover"  # scratch "run" holding state from one run to the next
CARRYOVER_TTL_S = 30 * 86400

CF = "cf"
BOSH = "bosh"
MATCH = "match"
INDEX = "index"
FLAGS = "flags"
ORPHANS = "orphans"
PLAN = "plan"
PLAN_INDEX = "plan#index"
PLAN_REMEDIATION = "plan#remediation"
BOSH_CURSOR = "bosh_cursor"
RETRY_FIRST = "retry_first"


def scan_details(batch: int) -> str:
    return f"scan#{batch}"


def batch_figures(phase: str, batch: int) -> str:
    """``scan#<b>#figures`` / ``apply#<b>#figures``: a finished batch's figures."""
    return f"{phase}#{batch}#figures"


def apply_items(batch: int) -> str:
    return f"apply#{batch}#items"


def progress(key: str) -> str:
    """What a batch that stopped early (its time budget) saved under ``key`` to go on from."""
    return key + "#progress"


def archive_intent(instance_id: str) -> str:
    """The backup an archive took before it removed anything (a retried Orphans step resumes from it)."""
    return f"archive#{instance_id}"


def plan_part(batch: int, offset: int) -> str:
    return f"plan#apply#{batch}#{offset}"


class RunScratch:
    """One run's scratch items: ``get``/``put`` by the keys above, with the run's TTL."""

    def __init__(self, store: ScratchStore, run_id: str, ttl_s: float) -> None:
        self.store, self.run_id, self.ttl_s = store, run_id, ttl_s

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get_scratch(self.run_id, key, default)

    def put(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        self.store.put_scratch(self.run_id, key, value, self.ttl_s if ttl_s is None else ttl_s)
