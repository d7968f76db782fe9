"""Finish's count of instances not reconciled: planned minus what the batches account for
(written, unchanged, failed, skipped by plan), whatever way a batch went missing."""

from reconciler.phases.finish import SUMMED, gather, gather_apply, not_reconciled


class Scratch:
    def __init__(self, data):
        self.data = data

    def get_scratch(self, run_id, key, default=None):
        return self.data.get(key, default)


def figures(instances, skipped=0, failed=0, failed_ids=()):
    return {"instances": instances, "instances_skipped": skipped, "instances_failed": failed,
            "instances_written": instances - failed, "failed_ids": list(failed_ids)}


def test_skipped_items_are_accounted_for_and_missing_batches_are_not():
    store = Scratch({"apply#0#figures": figures(4, skipped=1),
                     "apply#1#figures": figures(3, failed=1, failed_ids=["b"]),
                     "apply#2#items": [{"instance_id": "x"}, {"instance_id": "y"}]})
    failed: list[str] = []
    apply = gather(store, "r", "apply", 3, failed)
    missed = not_reconciled({"to_update": 10}, apply, {})
    assert missed == {"count": 3, "planned": 10, "reasons": {"instance_failed": 1, "batch_not_processed": 2}}
    assert sorted(failed) == ["b", "x", "y"]
    assert "instances_skipped" in SUMMED


def test_a_run_that_did_everything_reports_nothing_missing():
    store = Scratch({"apply#0#figures": figures(4, skipped=1)})
    assert not_reconciled({"to_update": 5}, gather(store, "r", "apply", 1, []), {})["count"] == 0


def test_batches_that_never_started_count_too():
    # the batch list itself came up short (no figures to find): planned minus accounted still shows it
    store = Scratch({"apply#0#figures": figures(5)})
    missed = not_reconciled({"to_update": 9}, gather(store, "r", "apply", 1, []), {})
    assert missed["count"] == 4 and missed["reasons"] == {"batch_not_processed": 4}


def test_what_an_early_batch_did_not_apply_counts_where_match_planned_it_again():
    """overlap_phases: early batches 0-2 (the scan batches), late batches 3-4. Early batch 0
    applied 4; early batch 1 failed one instance of 3 ("b"); early batch 2 failed whole (no
    figures). Match dropped the 6 applied early and planned "b" and batch 2's two instances
    again, in late batch 3 (with one skipped item), where "y" failed; late batch 4 is lost."""
    store = Scratch({"apply#0#figures": figures(4),
                     "apply#1#figures": figures(3, failed=1, failed_ids=["b"]),
                     "apply#2#items": [{"instance_id": "x"}, {"instance_id": "y"}],
                     "apply#3#figures": figures(3, skipped=1, failed=1, failed_ids=["y"]),
                     "apply#4#items": [{"instance_id": "z"}]})
    match = {"to_update": 6 + 5, "applied_early": 6, "apply_batches": 5, "early_batches": 3}
    failed: list[str] = []
    apply = gather_apply(store, "r", match, failed)
    assert sorted(failed) == ["y", "z"]  # not "b" or "x": the late pass reconciled them
    assert (apply["batches"], apply["batches_missing"], apply["early_batches"]) == (5, 1, 3)
    assert (apply["early_batches_missing"], apply["early_instances_failed"]) == (1, 1)
    assert apply["instances"] == 6 + 3 and apply["instances_failed"] == 1
    assert apply["instances_written"] == 4 + 2 + 2  # what the early batches did adds up
    missed = not_reconciled(match, apply, {})
    assert missed == {"count": 2, "planned": 11, "reasons": {"instance_failed": 1, "batch_not_processed": 1}}


def test_a_failed_early_batch_whose_instances_the_late_pass_reconciled_is_no_error():
    store = Scratch({"apply#0#figures": figures(2), "apply#1#items": [{"instance_id": "x"}],
                     "apply#2#figures": figures(1)})
    match = {"to_update": 3, "applied_early": 2, "apply_batches": 3, "early_batches": 2}
    failed: list[str] = []
    apply = gather_apply(store, "r", match, failed)
    assert failed == [] and apply["batches_missing"] == 0 and apply["early_batches_missing"] == 1
    assert not_reconciled(match, apply, {})["count"] == 0
