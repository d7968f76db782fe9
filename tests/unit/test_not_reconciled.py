"""Finish's count of instances not reconciled: planned minus what the batches account for
(written, unchanged, failed, skipped by plan), whatever way a batch went missing."""

from reconciler.phases.finish import SUMMED, gather, not_reconciled


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
