"""The scenario runner on a small generated world: the report's shape and figures."""

import importlib.util
import json

import pytest

from mockstack import runner
from mockstack.generator import generate
from reconciler.domain import FindingKind


@pytest.fixture(scope="module")
def small_world():
    world, expected = generate(6, seed=7)
    return world, expected


def test_config_for_the_stack_references_secrets_never_inlines_them():
    endpoints = {"cf": {"name": "cf", "api_url": "http://127.0.0.1:1", "client_id": "c", "client_secret": "S1",
                        "ca_cert": None},
                 "bosh": {"name": "bosh", "url": "https://127.0.0.1:2", "auth": "uaa", "client_id": "b",
                          "client_secret": "S2", "username": "u", "password": "S3", "ca_cert": None},
                 "vault": {"address": "http://127.0.0.1:3", "token": "S4", "mount": "secret", "ca_cert": None}}
    text, secrets = runner.build_config(endpoints, "reconciler:\n  batch_size: 3\ncf:\n  broker_name: other\n")
    for value in ("S1", "S2", "S4"):
        assert value not in text
    assert secrets == {"cf_client_secret": "S1", "vault_token": "S4", "bosh_client_secret": "S2"}
    from reconciler.config import load_settings

    settings = load_settings({}, text)
    assert settings.reconciler.batch_size == 3
    assert settings.cf_foundations[0].broker_name == "other"
    with pytest.raises(runner.ScenarioError, match="YAML"):
        runner.build_config(endpoints, "reconciler: [unclosed")


def test_orphan_lists_from_store_state():
    state = {"cf": {"k1": {"instance_id": "b"}, "k2": {"instance_id": "a"}},
             "bosh": {"redis-x": {"deployment_name": "redis-x"}}, "vault": {}}
    lists = runner.orphan_lists(state)
    assert lists == {kind.value: [] for kind in FindingKind} | {"cf": ["a", "b"], "bosh": ["redis-x"], "vault": []}


def test_report_of_a_run(small_world, tmp_path):
    world, _ = small_world
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world))
    out = tmp_path / "report.json"
    code = runner.main_run(["--world", str(path), "--runs", "2", "--report", str(out)])
    report = json.loads(out.read_text())
    assert code == (0 if report["runs"][0]["status"] == "SUCCEEDED" else 1)
    run = report["runs"][0]
    assert run["execution_arn"].startswith("arn:aws:states:us-east-1:123456789012:execution:blacksmith-reconcile:")
    assert run["history_events"] > run["state_transitions"] > 3
    assert 0 < run["max_state_payload_bytes"] < 256 * 1024
    has_cf, has_bosh = (importlib.util.find_spec(f"reconciler.{m}") is not None for m in ("cf", "bosh"))
    if not (has_cf or has_bosh):  # adapters not on this branch yet: both discoveries fail, the run says so
        assert (run["status"], run["error"]) == ("FAILED", "NoSourceAvailable")
        return
    assert run["status"] == "SUCCEEDED", run["cause"]
    phases = run["output"]["phases"]
    assert phases["discover_cf"]["status"] == ("ok" if has_cf else "failed")
    assert phases["discover_bosh"]["status"] == ("ok" if has_bosh else "failed")
    if has_cf:
        assert run["requests"]["cf"]["GET"] > 0
        assert phases["discover_cf"]["instances"] > 0
    if has_bosh:
        assert run["requests"]["bosh"]["GET"] > 0
    assert run["requests"]["vault"]["GET"] > 0
    assert phases["apply"]["batches_missing"] == 0
    assert phases["apply"]["instances_failed"] == 0
    assert "running" in report["status"]
    second = report["runs"][1]
    assert second["status"] == "SUCCEEDED"
    assert second["output"]["phases"]["apply"]["writes"] == 0  # a second run writes nothing
    assert second["output"]["phases"]["sync_index"]["written"] is False
    assert not {"PUT", "POST", "PATCH", "DELETE"} & set(second["requests"].get("vault", {}))
    assert set(report["orphans"]) == {kind.value for kind in FindingKind}
    # legacy backups (secret/<id>/backups/<sha>) are migrated to secret/backups/<id>/<sha> once BOSH
    # scans work (apply.migrate_legacy_backups); every other original path must survive
    legacy = {p for p in world["vault"] if p.count("/") == 3 and p.split("/")[2] == "backups"}
    assert set(report["vault"]) >= set(world["vault"]) - {"secret/db"} - legacy
    for path in legacy:
        assert any(q.startswith(f"secret/backups/{path.split('/')[1]}/") for q in report["vault"]), path


def test_bad_inputs_exit_2(tmp_path, capsys):
    assert runner.main_run(["--world", str(tmp_path / "missing.json"), "--report", str(tmp_path / "r.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    bad = tmp_path / "faults.json"
    bad.write_text('{"bosh": true}')
    world = tmp_path / "w.json"
    world.write_text("{}")
    assert runner.main_run(["--world", str(world), "--faults", str(bad), "--report", str(tmp_path / "r.json")]) == 2
