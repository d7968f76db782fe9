"""The fault-convergence suite's comparison (mockstack.faults) sees every real difference, so a
scenario cannot look converged while a path differs."""

from __future__ import annotations

from mockstack.faults import differences, writes_outside

REF = {"secret/db": {"a": {"plan": "small", "updated_at": "t1"}},
       "secret/a/manifest": {"manifest": "x", "history": [1]},
       "secret/backups/a/sha1": {"blob": "1"}}


def test_equal_but_for_timestamps_history_and_backup_hashes():
    same = {"secret/db": {"a": {"plan": "small", "updated_at": "t2"}},
            "secret/a/manifest": {"manifest": "x", "history": [1, 2]},
            "secret/backups/a/sha2": {"blob": "2"}}
    assert differences(same, REF) == []


def test_a_changed_missing_or_extra_path_is_a_difference():
    changed = {**REF, "secret/a/manifest": {"manifest": "y"}}
    missing = {k: v for k, v in REF.items() if k != "secret/db"}
    extra = {**REF, "secret/b/credentials": {"password": "p"}}
    no_backup = {k: v for k, v in REF.items() if "backups" not in k}
    assert differences(changed, REF) == ["secret/a/manifest"]
    assert differences(missing, REF) == ["secret/db"]
    assert differences(extra, REF) == ["secret/b/credentials"]
    assert differences(no_backup, REF) == ["secret/backups/a/*"]


class _Req:
    def __init__(self, method: str, path: str) -> None:
        self.api, self.method, self.path = "vault", method, path


def test_writes_outside_our_paths_are_named():
    reqs = [_Req("PUT", "/v1/secret/data/a/manifest"), _Req("POST", "/v1/secret/data/db"),
            _Req("DELETE", "/v1/secret/metadata/backups/a/sha"), _Req("PUT", "/v1/secret/data/other/x"),
            _Req("GET", "/v1/secret/data/other/y"), _Req("PUT", "/v1/sys/mounts/x")]
    assert writes_outside(reqs, {"a"}) == ["PUT /v1/sys/mounts/x", "PUT other/x"]
