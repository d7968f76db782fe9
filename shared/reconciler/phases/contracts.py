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
``scan#<b>#failed``            RecordFailure       ApplyBatch (early)
``apply#<b>#items``            Match, ApplyBatch   ApplyBatch, Finish
                               (early)
``apply#<b>#early``            ApplyBatch (early)  Match
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
the next (``bosh_scanned``: when each deployment was last read, for the cap's rotation;
``bosh_feed#<director>``: the events feed's chain, for revalidation; ``retry_first``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInput
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
BOSH_SCANNED = "bosh_scanned"  # {"director/name": when it was last chosen for a read}
RETRY_FIRST = "retry_first"


def bosh_feed(director: str) -> str:
    """A director's events-feed chain: ``{chain_since, read_until, last_event: {name: ts}}``."""
    return f"bosh_feed#{director}"


def scan_details(batch: int) -> str:
    return f"scan#{batch}"


def batch_figures(phase: str, batch: int) -> str:
    """``scan#<b>#figures`` / ``apply#<b>#figures``: a finished batch's figures."""
    return f"{phase}#{batch}#figures"


def scan_failed(batch: int) -> str:
    """RecordFailure's mark of a failed scan batch: an early apply batch waiting for it stops."""
    return f"scan#{batch}#failed"


def early_applied(batch: int) -> str:
    """``{instance: digest}`` of the items an early apply batch applied (Match drops equal ones)."""
    return f"apply#{batch}#early"


def apply_protected(batch: int) -> str:
    """The instances of an apply batch whose state before the run's writes is protected (backed
    up, or nothing to protect): a later attempt in the run (the batch's second try, a handed-over
    or retried invocation) takes no second backup of its own half-written tree."""
    return f"apply#{batch}#protected"


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


# --- what each state reads and returns (the ASL's field names; tests/unit/test_state_contracts.py) ---


class Contract(BaseModel):
    """A state's input or output. Extra fields are kept: a state passes on what it does not read."""

    model_config = ConfigDict(extra="allow")


class Timeouts(Contract):
    """Whole seconds for ``TimeoutSecondsPath`` (Begin computes them from the settings)."""

    instance_discovery: float
    deployment_scan: float
    vault_operations: float


class Limits(Contract):
    """Both Map states' ``MaxConcurrencyPath``."""

    scan_concurrency: int
    apply_concurrency: int
    overlap: bool = False  # reconciler.concurrency.overlap_phases, and no selection: the early apply branch


class Run(Contract):
    """``$.run``: who this run is and what it may do (Begin's output)."""

    run_id: str
    execution_arn: str | None = None
    started_at: str | None = None
    disabled: bool = False
    reason: str | None = None
    forced: bool = False
    dry_run: bool = False
    selection: dict[str, Any] | None = None
    cache_cleared: int = 0
    limits: Limits | None = None
    timeouts: Timeouts | None = None
    # continue-as-new: {execution: n, started_at: this execution's start, next_name: the follow-up's name,
    # resume: "scan" | "apply" in a follow-up execution (Begin on {"continue": ...})}
    chain: dict[str, Any] | None = None


class BeginInput(Contract):
    input: Any = None  # whatever the operator typed: Begin's own parser says what is accepted
    execution_arn: str
    started_at: str


class BeginOutput(Contract):
    run: Run


class SourceResult(Contract):
    """DiscoverCF's / DiscoverBosh's output (or its Failed Pass state's): ``$.sources.cf|bosh``."""

    source: str | None = None
    status: str  # ok | failed | skipped
    error: Any = None
    batches: list[int] = Field(default_factory=list)  # DiscoverBosh: the ScanDeployments Map's items (this window)
    # continue-as-new (phases/chain.py): every scan batch of the run, the next window's first, the window's
    # width, and whether batches are left for a follow-up execution (MoreToScan?)
    batch_count: int | None = None
    batch_next: int | None = None
    batch_window: int | None = None
    more: bool = False
    # some foundations / directors down: the others' share is judged on its own
    ok_foundations: list[str] = Field(default_factory=list)
    failed_foundations: list[str] = Field(default_factory=list)
    ok_directors: list[str] = Field(default_factory=list)
    failed_directors: list[str] = Field(default_factory=list)


class Sources(Contract):
    cf: SourceResult | None = None  # absent only in hand-made events (tests)
    bosh: SourceResult | None = None


class RunInput(Contract):
    """DiscoverCF, DiscoverBosh."""

    run: Run


class SourcesInput(Contract):
    """Match, SyncIndex, Orphans."""

    run: Run
    sources: Sources
    early: bool = False  # Match as PrepareEarly (overlap_phases)


class MatchOutput(Contract):
    batches: list[int] = Field(default_factory=list)  # the UpdateVault Map's items (this window)
    apply_batches: int | None = None  # every apply batch of the run, the early ones first
    batch_count: int | None = None  # continue-as-new, as SourceResult's
    batch_next: int | None = None
    batch_window: int | None = None
    more: bool = False  # MoreToApply?


class EarlyOutput(Contract):
    """PrepareEarly's output (``$.early``): the UpdateVaultEarly Map's items (the scan batches)."""

    batches: list[int] = Field(default_factory=list)


class BatchInput(Contract):
    """ScanBatch, ApplyBatch: one Map item; the batch invokes itself again until ``done``."""

    run_id: str
    batch: int
    offset: int
    timeout_s: float | None = None
    early: bool = False  # ApplyBatch beside the scan (overlap_phases): it cuts its items once its scans are done
    breaker_handovers: int = 0  # invocations an open breaker ended without progress (runtime.py)


class BatchOutput(BatchInput):
    done: bool


class BatchState(BatchInput):
    """A Map iteration's data: the item, then the batch's output, or the error its Catch put there."""

    done: bool | None = None
    error: dict[str, Any] | None = None


class BatchResult(Contract):
    """A Map iteration's result (ScanBatchCompleted / ScanBatchSkipped and the apply ones)."""

    batch: int
    failed: bool = False


class FinishInput(Contract):
    run: Run
    sources: Sources | None = None
    match: MatchOutput | None = None
    index: dict[str, Any] | None = None
    orphans: dict[str, Any] | None = None


class RecordFailureInput(Contract):
    """``scope`` batch (a Map item failed) or run (the run failed: the whole state data)."""

    scope: str
    phase: str | None = None
    run_id: str | None = None
    batch: int | None = None
    error: Any = None
    state: dict[str, Any] | None = None
    execution_arn: str | None = None


class Refusal(Contract):
    lambda_error: dict[str, Any]


class StartOutput(Contract):
    """The ``Start`` Pass state's wrapper around the execution input (Begin's Catch adds ``error``)."""

    input: Any = None
    error: dict[str, Any] | None = None
    refused: Refusal | None = None  # LockHeld: the RunLocked error, parsed


class HandoverInput(Contract):
    """``Handover`` (continue-as-new): Step Functions' StartExecution of this state machine; the
    follow-up's Begin reads ``Input`` (``{"continue": <state>}``)."""

    StateMachineArn: str
    Name: str
    Input: dict[str, Any]


class HandoverResult(Contract):
    """``$.handover``: the follow-up execution (``HandedOver`` names it in this execution's output)."""

    execution_arn: str


class StateData(Contract):
    """The state machine's data between the top-level states, as each one's ResultPath leaves it."""

    run: Run
    sources: Sources | None = None
    match: MatchOutput | None = None
    early: EarlyOutput | None = None
    index: dict[str, Any] | None = None
    orphans: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    refused: Refusal | None = None
    record_error: dict[str, Any] | None = None
    handover: HandoverResult | None = None  # Handover's result: the follow-up execution


HANDOVER = "arn:aws:states:::states:startExecution"

#: Each Task state's input model (the Resource's function; Handover: Step Functions' API).
TASK_INPUTS: dict[str, type[Contract]] = {
    HANDOVER: HandoverInput,
    "Begin": BeginInput, "DiscoverCF": RunInput, "DiscoverBosh": RunInput, "ScanBatch": BatchInput,
    "RecordFailure": RecordFailureInput, "Match": SourcesInput, "ApplyBatch": BatchInput,
    "SyncIndex": SourcesInput, "Orphans": SourcesInput, "Finish": FinishInput,
}

M = TypeVar("M", bound=Contract)


def parse(model: type[M], event: Any, *keys: str) -> M:
    """``event`` validated as the state's input ``model``; ``keys`` must be present even where
    the model has a default. InvalidInput names what is missing or mistyped: a wiring error
    between the ASL and the phase, not user input."""
    if not isinstance(event, Mapping):
        raise InvalidInput(f"event: expected a JSON object, got {type(event).__name__}")
    missing = [k for k in keys if k not in event]
    if missing:
        raise InvalidInput(f"event is missing {missing}; it has {sorted(event)}")
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise InvalidInput(f"event does not match {model.__name__}: {where}: {first['msg']}") from None
