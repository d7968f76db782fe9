"""phases/chain.py: the window of batches one execution runs (continue-as-new sizing)."""

from __future__ import annotations

import pytest

from reconciler.config import load_settings
from reconciler.errors import InvalidInput
from reconciler.phases import begin, chain, record_failure, runtime
from reconciler.phases.deps import Deps
from tests.fakes import MemoryStore


def _settings(**execution):
    return load_settings(env={f"BLACKSMITH_RECONCILER_EXECUTION_{k.upper()}": str(v) for k, v in execution.items()})


def test_the_default_history_budget_splits_50000_instances_in_two_executions():
    s = _settings()
    per_execution = chain.iterations_budget(s)
    assert per_execution == (12500 * 9 // 10 - chain.FIXED_EVENTS) // chain.EVENTS_PER_ITERATION  # 1011
    assert per_execution * chain.EVENTS_PER_ITERATION + chain.FIXED_EVENTS < 12500
    # 969 scan + 1,000 apply iterations at 50,000 instances (docs/performance.md)
    assert -(-(969 + 1000) // per_execution) == 2


def test_a_tiny_budget_still_takes_one_batch():
    s = _settings(max_history_events=200)
    assert chain.iterations_budget(s) == 5
    assert chain.window(s, "apply", 12, 1, None) == 5
    assert chain.window(s, "apply", 12, 1, None, iterations_used=5) == 1  # at least one


def test_the_time_budget_counts_the_rate_floor_and_the_measured_time():
    s = load_settings(env={})  # Vault 50/s, 900 s x 0.6 = 540 s per execution
    # 6 reads an instance at 50/s: 0.12 s; batches of 50 -> 6 s a batch -> 90 batches
    assert chain.window(s, "apply", 1000, 50, None) == 90
    # measured 2 s an instance: 100 s a batch -> 5 waves of map_concurrency batches
    assert chain.window(s, "apply", 1000, 50, 2000.0) == 5 * runtime.map_concurrency(s)
    assert chain.window(s, "apply", 1000, 50, None, seconds_used=540.0) == 1


def test_cut_and_slide_cover_every_batch_once():
    part = chain.cut(7, 3)
    seen = list(part["batches"])
    while part["more"]:
        part = chain.slide(part)
        seen += part["batches"]
    assert seen == list(range(7)) and chain.batch_count(part) == 7
    assert chain.cut(0, 3) == {"batches": [], "batch_count": 0, "batch_next": 0, "batch_window": 3, "more": False}


def test_the_late_apply_batches_are_cut_after_the_early_ones():
    part = chain.cut(5, 2, start=3)  # 3 early batches applied beside the scan
    assert part == {"batches": [3, 4], "batch_count": 8, "batch_next": 5, "batch_window": 2, "more": True}
    assert chain.left(part) == 3
    last = chain.slide(chain.slide(part, 2), 10)
    assert last["batches"] == [7] and not last["more"] and chain.batch_count(last) == 8
    assert chain.slide(part, 10)["batches"] == [5, 6, 7]  # a follow-up's wider window


def test_an_execution_names_its_follow_up_within_80_characters():
    assert chain.execution_info("run-1", 1, "t")["next_name"] == "run-1-2"
    long = chain.execution_info("r" * 80, 9, "t")["next_name"]
    assert len(long) == 80 and long.endswith("-10")


def _state(**parts):
    run = {"run_id": "run-1", "chain": chain.execution_info("run-1", 1, "2026-01-01T00:00:00Z"),
           "started_at": "2026-01-01T00:00:00Z", "limits": {"scan_concurrency": 1, "apply_concurrency": 1}}
    return {"run": run, "sources": {"cf": {"status": "ok"}, "bosh": {"status": "ok", "batch_size": 1,
                                                                     **chain.cut(12, 5)}}, **parts}


def test_resume_slides_the_phase_that_was_cut_short():
    s = _settings(max_history_events=200)  # 5 iterations an execution
    scan = chain.resume(s, _state(), {})
    assert scan["run"]["chain"]["resume"] == "scan" and scan["sources"]["bosh"]["batches"] == [5, 6, 7, 8, 9]
    apply = chain.resume(s, {**_state(), "match": {"batch_size": 2, **chain.cut(9, 1, start=2)},
                             "handover": {"execution_arn": "x"}}, {})
    assert apply["run"]["chain"]["resume"] == "apply" and apply["match"]["batches"] == [3, 4, 5, 6, 7]
    assert "handover" not in apply
    with pytest.raises(InvalidInput):
        done = _state()
        done["sources"]["bosh"]["more"] = False
        chain.resume(s, done, {})


def _deps(store):
    return Deps.build(_settings(max_history_events=200), store, environ={})


def test_a_follow_up_execution_keeps_the_runs_lock_and_record():
    store = MemoryStore()
    store.acquire_lock("run-1", "arn:x:run-1", 900)
    store.put_run({"run_id": "run-1", "status": "running"})
    event = {"input": {"continue": _state(), "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": "arn:x:run-1"},
             "execution_arn": "arn:aws:states:us-east-1:1:execution:m:run-1-2", "started_at": "2026-01-01T00:05:00Z"}
    out = begin.run(event, None, _deps(store))
    assert out["run"]["run_id"] == "run-1" and out["run"]["started_at"] == "2026-01-01T00:00:00Z"  # the run's
    assert out["run"]["chain"] == {"execution": 2, "started_at": "2026-01-01T00:05:00Z", "next_name": "run-1-3",
                                   "resume": "scan"}
    assert out["sources"]["bosh"]["batches"] == [5, 6, 7, 8, 9]
    assert store.lock["run_id"] == "run-1" and list(store.runs) == ["run-1"]
    assert store.runs["run-1"]["executions"] == 2


def test_a_follow_up_whose_run_lost_the_lock_is_refused_and_fails_that_run():
    store = MemoryStore()
    store.acquire_lock("other", "arn:x:other", 900)
    store.put_run({"run_id": "run-1", "status": "running", "started_at": "2026-01-01T00:00:00Z"})
    event = {"input": {"continue": _state()}, "execution_arn": "arn:x:run-1-2", "started_at": "t"}
    with pytest.raises(begin.ChainBroken, match="does not hold the reconcile lock"):
        begin.run(event, None, _deps(store))
    failed = record_failure.run({"scope": "run", "execution_arn": "arn:x:run-1-2",
                                 "state": {"input": event["input"], "error": {"Error": "ChainBroken", "Cause": "x"}}},
                                None, Deps.build(None, store, settings_error=RuntimeError("no webhooks here")))
    assert failed["run_id"] == "run-1" and store.runs["run-1"]["status"] == "failed"
    assert store.lock["run_id"] == "other"  # not the run's to release


@pytest.mark.parametrize("raw", [{"continue": "yes"}, {"continue": {"run": {"run_id": "r"}}},
                                 {"continue": {}, "forced": True}])
def test_a_continuation_that_is_not_a_runs_state_is_refused(raw):
    with pytest.raises(InvalidInput):
        begin.run({"input": raw, "execution_arn": "arn:x:r-2", "started_at": "t"}, None, _deps(MemoryStore()))
