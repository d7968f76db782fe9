"""phases/chain.py: the window of batches one execution runs (continue-as-new sizing)."""

from __future__ import annotations

from reconciler.config import load_settings
from reconciler.phases import chain, runtime


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
