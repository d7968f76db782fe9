from reconciler.domain import DomainConfig, build_plan_items, match, plan_batch, plan_instance
from reconciler.domain.broker import unix_seconds
from reconciler.models import CFBinding
from tests.unit.domain_support import (
    CATALOG,
    LATER,
    NOW,
    FakeVault,
    cf_instance,
    detail,
    redis_manifest,
    vms_for,
)

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
BID = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
NAME = f"redis-standalone-{A}"


def _inputs(manifest=None, **cf_kw):
    inst = cf_instance(A, **cf_kw)
    dep = detail(NAME, manifest if manifest is not None else redis_manifest(NAME, A), vms_for("standalone"))
    m = match([inst], [dep], {}, CATALOG).by_instance()[A]
    return inst, dep, m


def _plan(vault, now=NOW, **kw):
    inst, dep, m = kw.pop("inputs", None) or _inputs()
    return plan_instance(A, current=vault.tree(A), now=now, cf=inst, deployment=dep, match=m, **kw)


def test_lost_instance_is_rebuilt_then_plan_is_empty():
    vault = FakeVault()
    plan = _plan(vault, parameters={"maxmemory-policy": "noeviction"})
    paths = {w.path: w for w in plan.writes}
    assert set(paths) == {f"secret/{A}", f"secret/{A}/manifest", f"secret/{A}/credentials", f"secret/{A}/metadata"}
    assert all(w.cas == 0 for w in plan.writes)
    root = paths[f"secret/{A}"].data
    assert root["instance_id"] == A and root["plan_id"] == "redis-standalone" and root["deployment_name"] == NAME
    assert root["parameters"] == {"maxmemory-policy": "noeviction"} and root["context"]["platform"] == "cloudfoundry"
    assert paths[f"secret/{A}/manifest"].data["manifest"].startswith("name:")
    assert paths[f"secret/{A}/credentials"].data["password"] == "s3cret-redis"
    meta = paths[f"secret/{A}/metadata"].data
    assert len(meta["history"]) == 1 and meta["vms"][0]["ips"] == ["10.0.0.5"]
    assert plan.changed and plan.credentials_recovered and not plan.needs_credential_recovery
    vault.apply(plan.writes)
    again = _plan(vault, now=LATER, parameters={"maxmemory-policy": "noeviction"})
    assert again.writes == [] and not again.changed


def test_user_fields_and_existing_credentials_are_kept():
    user = {
        "parameters": {"a": 1},
        "original_request": {"x": [1]},
        "provision_params": {},
        "update_params": {"b": 2},
        "context": {"platform": "kubernetes"},
        "service_id": "old",
        "broker_field": "keep",
    }
    creds = {"host": "10.7.7.7", "port": 6379, "password": "original"}
    vault = FakeVault({f"secret/{A}": user, f"secret/{A}/credentials": creds})
    plan = _plan(vault, parameters={"a": 999})
    by = {w.path: w.data for w in plan.writes}
    root = by[f"secret/{A}"]
    for k in ("parameters", "original_request", "provision_params", "update_params", "context", "broker_field"):
        assert root[k] == user[k]
    assert root["service_id"] == "redis"  # CF is authoritative for what it owns
    assert f"secret/{A}/credentials" not in by
    assert next(w for w in plan.writes if w.path == f"secret/{A}").cas == 1


def test_empty_credentials_are_recovered_with_cas_of_the_empty_version():
    vault = FakeVault({f"secret/{A}/credentials": {}})
    plan = _plan(vault)
    w = next(w for w in plan.writes if w.path.endswith("/credentials"))
    assert w.cas == 1 and w.data["host"] == "10.0.0.5"


def test_stale_manifest_only_manifest_and_history_written():
    vault = FakeVault()
    vault.apply(_plan(vault).writes)
    new_text = redis_manifest(NAME, A).replace("persistent: true", "persistent: false")
    plan = _plan(vault, now=LATER, inputs=_inputs(new_text))
    assert {w.path.rsplit("/", 1)[-1] for w in plan.writes} == {"manifest", "metadata"}
    meta = next(w.data for w in plan.writes if w.path.endswith("/metadata"))
    assert len(meta["history"]) == 2 and meta["history"][-1]["paths"] == ["manifest"]
    assert "s3cret" not in str(meta["history"])


def test_history_is_bounded():
    history = [{"timestamp": f"t{i}", "action": "reconcile"} for i in range(60)]
    vault = FakeVault({f"secret/{A}/metadata": {"history": history}})
    plan = _plan(vault, cfg=DomainConfig(history_limit=50))
    meta = next(w.data for w in plan.writes if w.path.endswith("/metadata"))
    assert (
        len(meta["history"]) == 50
        and meta["history"][-1]["timestamp"] == unix_seconds(NOW)  # the broker keeps only numbers
        and meta["history"][0]["timestamp"] == "t11"
    )


def test_only_our_history_entries_are_bounded_the_brokers_are_its_own():
    broker = [{"timestamp": 1_760_000_000 + i, "action": "provision", "description": "b"} for i in range(70)]
    ours = [{"timestamp": 1_760_100_000 + i, "action": "reconcile"} for i in range(10)]
    vault = FakeVault({f"secret/{A}/metadata": {"history": broker + ours}})
    plan = _plan(vault, cfg=DomainConfig(history_limit=5))
    meta = next(w.data for w in plan.writes if w.path.endswith("/metadata"))
    assert [e for e in meta["history"] if e["action"] == "provision"] == broker  # every one of the broker's
    assert len([e for e in meta["history"] if e["action"] == "reconcile"]) == 5  # ours: the newest 5


def test_unresolved_placeholder_marks_recovery_needed():
    plan = _plan(FakeVault(), inputs=_inputs(redis_manifest(NAME, A, password="((redis-password))")))
    assert plan.needs_credential_recovery and "unresolved" in plan.credential_recovery_reason
    assert not any(w.path.endswith("/credentials") for w in plan.writes)


def test_bindings_restored_and_only_missing_keys_added():
    existing = {"host": "10.0.0.5", "password": "kept"}
    vault = FakeVault({f"secret/{A}/bindings/{BID}/credentials": existing})
    b = CFBinding(
        foundation="cf",
        guid=BID.upper(),
        instance_guid=A,
        name="b",
        app_guid="app",
        app_name="web",
        credentials={"host": "other", "password": "new", "port": 6379},
    )
    plan = _plan(vault, bindings=[b])
    by = {w.path: w for w in plan.writes}
    bc = by[f"secret/{A}/bindings/{BID}/credentials"]
    assert bc.data == {"host": "10.0.0.5", "password": "kept", "port": 6379} and bc.cas == 1
    assert by[f"secret/{A}/bindings/{BID}/metadata"].data["app_name"] == "web"
    vault.apply(plan.writes)
    assert _plan(vault, now=LATER, bindings=[b]).writes == []


def test_binding_without_credentials_is_reported():
    b = CFBinding(foundation="cf", guid=BID, instance_guid=A)
    plan = _plan(FakeVault(), bindings=[b, CFBinding(foundation="cf", guid="bad", instance_guid=A)])
    assert plan.missing_binding_credentials == [BID]
    assert any("not a UUID" in n for n in plan.notes)


def test_kv_v1_has_no_cas_and_invalid_id_plans_nothing():
    vault = FakeVault({f"secret/{A}": {"instance_id": A}})
    tree = {p: (d, None) for p, (d, _) in vault.tree(A).items()}
    inst, dep, m = _inputs()
    plan = plan_instance(A, current=tree, now=NOW, cf=inst, deployment=dep, match=m)
    assert next(w for w in plan.writes if w.path == f"secret/{A}").cas is None
    assert plan_instance("../../etc", current={}, now=NOW).skipped


def test_cf_only_and_bosh_down():
    inst = cf_instance(A)
    plan = plan_instance(A, current={}, now=NOW, cf=inst, bosh_available=False)
    assert plan.needs_credential_recovery and "BOSH was not available" in plan.credential_recovery_reason
    assert plan.credential_recovery_deferred  # not attempted: counted as pending, not as unrecoverable
    assert {w.path for w in plan.writes} == {f"secret/{A}", f"secret/{A}/metadata"}


def test_low_confidence_match_writes_no_deployment_data():
    inst = cf_instance(A)
    dep = detail(f"copy-of-{A}-x", redis_manifest("x", None), vms_for("standalone"))
    m = match([inst], [dep], {}, CATALOG).by_instance()[A]
    plan = plan_instance(A, current={}, now=NOW, cf=inst, deployment=dep, match=m, cfg=DomainConfig(min_confidence=0.6))
    assert not any(w.path.endswith("/manifest") for w in plan.writes) and plan.notes


def test_batch_items_and_plan_batch():
    insts = [cf_instance(A)]
    dep = detail(NAME, redis_manifest(NAME, A), vms_for("standalone"))
    res = match(insts, [dep], {}, CATALOG)
    items = build_plan_items(res, instances=insts, details=[dep], bindings=[], parameters={A.upper(): {"p": 1}})
    assert [i.instance_id for i in items] == [A] and items[0].parameters == {"p": 1}
    batch = plan_batch(items, {A: {}}, now=NOW)
    assert batch.changed_instances == [A] and len(batch.writes) == 4
    # BOSH-only: the same deployment is planned from the match alone
    items = build_plan_items(res, instances=None, details=[dep], cf_available=False, vault_ids=[A])
    assert items[0].cf is None and items[0].deployment.name == NAME and not items[0].skip_reason
    # ... but a deployment Vault has never heard of gets no tree while CF cannot be asked
    items = build_plan_items(res, instances=None, details=[dep], cf_available=False)
    assert items[0].skip_reason and plan_batch(items, {}, now=NOW).writes == []
