"""Auto-remediation decisions (pure) and its configuration."""

from __future__ import annotations

import pytest

from reconciler.config import config_warnings, load_settings
from reconciler.domain import DomainConfig
from reconciler.domain.remediation import RemediationPolicy, select_remediation
from reconciler.errors import ConfigError

NOW = "2026-03-01T00:00:00Z"
A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
B = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
C = "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ARCHIVE = {"vault": RemediationPolicy(action="archive", archive_after_s=30 * 86400, after_runs=3)}


def entry(uid, first_seen, checks, last_seen=NOW, **extra):
    return {"type": "vault", "key": uid, "instance_id": uid, "first_seen": first_seen, "last_seen": last_seen,
            "checks": checks, **extra}


def test_only_old_enough_findings_seen_in_enough_complete_runs_are_due():
    state = {"vault": {A: entry(A, "2026-01-01T00:00:00Z", 3),  # 59 days, 3 runs: due
                       B: entry(B, "2026-02-20T00:00:00Z", 9),  # 9 days: too young
                       C: entry(C, "2025-12-01T00:00:00Z", 2)},  # old, but only 2 runs
             "cf": {}, "bosh": {}}
    due, waiting = select_remediation(state, ARCHIVE, now=NOW, evaluated=["cf", "bosh", "vault"])
    assert [a.instance_id for a in due] == [A] and due[0].action == "archive"
    assert "3 consecutive complete runs" in due[0].reason
    why = {w.instance_id: w.reason for w in waiting}
    assert "age 30.0d (it is 9.0d)" in why[B] and "1 more complete run(s)" in why[C]


def test_nothing_is_due_in_an_incomplete_run_or_for_a_finding_this_run_did_not_see():
    state = {"vault": {A: entry(A, "2026-01-01T00:00:00Z", 5), B: entry(B, "2026-01-01T00:00:00Z", 5,
                                                                         last_seen="2026-02-28T00:00:00Z")}}
    due, waiting = select_remediation(state, ARCHIVE, now=NOW, evaluated=["cf", "bosh"])
    assert due == [] and all("complete run" in w.reason for w in waiting)
    due, _ = select_remediation(state, ARCHIVE, now=NOW, evaluated=["vault"])
    assert [a.instance_id for a in due] == [A]


def test_default_is_report_and_report_only_kinds_never_act():
    state = {"vault": {A: entry(A, "2020-01-01T00:00:00Z", 99)},
             "cf": {A: {**entry(A, "2020-01-01T00:00:00Z", 99), "type": "cf"}},
             "bosh": {"dep": {"key": "dep", "instance_id": A, "first_seen": "2020-01-01T00:00:00Z",
                              "last_seen": NOW, "checks": 99}}}
    policies = DomainConfig.from_settings(load_settings(env={})).remediation
    assert {p.action for p in policies.values()} == {"report"}
    assert select_remediation(state, policies, now=NOW, evaluated=["cf", "bosh", "vault"]) == ([], [])
    forged = {"cf": RemediationPolicy(action="archive", archive_after_s=0, after_runs=1)}  # not via config
    assert select_remediation(state, forged, now=NOW, evaluated=["cf"]) == ([], [])


def test_an_archived_or_non_uuid_finding_is_not_acted_on_again():
    state = {"vault": {A: entry(A, "2026-01-01T00:00:00Z", 5, archived={"backup_sha256": "x"}),
                       "not-a-uuid": entry("not-a-uuid", "2026-01-01T00:00:00Z", 5)}}
    assert select_remediation(state, ARCHIVE, now=NOW, evaluated=["vault"]) == ([], [])


def test_configuration_of_remediation():
    s = load_settings(env={}, file_text="reconciler:\n  remediation:\n"
                                        "    vault_orphan: {action: archive, archive_after: 1d12h, after_runs: 2}\n"
                                        "    cf_orphan: report\n")
    p = DomainConfig.from_settings(s).remediation["vault"]
    assert (p.action, p.archive_after_s, p.after_runs) == ("archive", 36 * 3600, 2)
    assert config_warnings(s) == []


@pytest.mark.parametrize(("text", "parts"), [
    ("    cf_orphan: archive\n", ["remediation.cf_orphan.action", "'archive'", "accepted: report", "line 3"]),
    ("    bosh_orphan: {action: delete}\n", ["bosh_orphan.action", "'delete'"]),
    ("    vault_orphan: {action: archive, archive_after: 3w}\n", ["vault_orphan.archive_after", "unknown unit 'w'",
                                                                 "30d"]),
    ("    vault_orphan: {action: archive, after_runs: 0}\n", ["vault_orphan.after_runs", "0", ">= 1"]),
    ("    cf_orphan: {action: report, archive_after: 1d}\n", ["cf_orphan.archive_after", "unknown key"]),
    ("    vault_orphans: report\n", ["remediation.vault_orphans", "unknown key", "did you mean 'vault_orphan'"]),
])
def test_bad_remediation_settings_are_one_clear_error(text, parts):
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, file_text="reconciler:\n  remediation:\n" + text)
    for part in parts:
        assert part in str(err.value), (part, str(err.value))


def test_archive_needs_backups_on_delete():
    with pytest.raises(ConfigError, match="needs backup.enabled and backup.backup_on_delete"):
        load_settings(env={}, file_text="reconciler:\n  backup: {backup_on_delete: false}\n"
                                        "  remediation: {vault_orphan: archive}\n")


def test_an_archive_is_notified_with_its_undo():
    from reconciler.notify import Event, run_events

    archived = [{"event": "archived", "instance_id": A, "backup_sha256": "ab" * 32, "paths_removed": 4,
                 "index_entry_removed": True, "undo": f"restore {A} {'ab' * 32}", "reason": "x"}]
    notes = run_events("r1", status="succeeded", update=None, figures={}, breakers={},
                       remediation={"archived": archived})
    (note,) = [n for n in notes if n.event is Event.REMEDIATION]
    first = note.details["archived"][0]
    assert first["undo"].startswith(f"restore {A}") and "reason" not in first
    assert not [n for n in run_events("r1", status="succeeded", update=None, figures={}, breakers={},
                                      remediation={"archived": []}) if n.event is Event.REMEDIATION]
