"""Property tests: planning is idempotent, loses no credential and writes only our paths."""

from __future__ import annotations

import copy
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.domain import DomainConfig, is_allowed_write_path, match, plan_instance
from reconciler.domain.broker import OUR_HISTORY_ACTIONS
from reconciler.domain.manifests import is_placeholder
from reconciler.domain.types import USER_FIELDS
from reconciler.models import VM, CFBinding
from tests.unit.domain_support import (
    CATALOG,
    FakeVault,
    cf_instance,
    detail,
    postgres_manifest,
    rabbitmq_manifest,
    redis_manifest,
)

PROFILE = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])

uuids = st.uuids(version=4).map(str)
text = st.text(alphabet=string.ascii_letters + string.digits + "!@#$%^&*()/:?-_ ", min_size=0, max_size=12)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), text)
json_value = st.recursive(
    json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=6
)
json_obj = st.dictionaries(text.filter(bool), json_value, max_size=4)
secret = st.one_of(text.filter(bool), st.sampled_from(["((redis-password))", '(( vault $CREDENTIALS "/x:y" ))']))
ips = st.lists(st.ip_addresses(v=4).map(str), max_size=2)


@st.composite
def instance_case(draw):
    uid = draw(uuids)
    plan = draw(st.sampled_from([p for p in CATALOG if p.service_id in ("redis", "postgresql", "rabbitmq")]))
    name = f"{plan.plan_id}-{uid}"
    manifest_id = draw(st.sampled_from([uid, uid.upper(), None]))
    kind = plan.service_id
    pw = draw(secret)
    manifest = {
        "redis": lambda: redis_manifest(name, manifest_id, password=pw),
        "postgresql": lambda: postgres_manifest(name, manifest_id, password=pw),
        "rabbitmq": lambda: rabbitmq_manifest(name, manifest_id, password=pw),
    }[kind]()
    manifest = draw(st.sampled_from([manifest, manifest, None, "key: [unclosed"]))
    group = {"redis": "standalone", "postgresql": "postgresql", "rabbitmq": "rabbitmq"}[kind]
    vms = [
        VM(instance_group=group, index=i, id=f"vm{i}", ips=draw(ips), dns=draw(st.lists(text.filter(bool), max_size=1)))
        for i in range(draw(st.integers(0, 2)))
    ]
    dep = draw(st.one_of(st.none(), st.just(detail(name, manifest, vms, release=f"{kind}-forge"))))
    in_cf = draw(st.booleans())
    inst = cf_instance(uid, plan.plan_id) if in_cf else None

    bindings = []
    for _ in range(draw(st.integers(0, 2))):
        bindings.append(
            CFBinding(
                foundation="cf",
                guid=draw(uuids),
                instance_guid=uid,
                name=draw(text),
                credentials=draw(st.one_of(st.none(), json_obj)),
            )
        )

    vault: dict[str, dict] = {}
    base = f"secret/{uid}"
    if draw(st.booleans()):
        root = draw(json_obj)
        for f in draw(st.lists(st.sampled_from(USER_FIELDS), unique=True)):
            root[f] = draw(json_value)
        vault[base] = root
    if draw(st.booleans()):
        vault[f"{base}/credentials"] = draw(st.one_of(st.just({}), json_obj))
    if draw(st.booleans()):
        vault[f"{base}/manifest"] = {
            "manifest": draw(st.sampled_from([manifest or "", "old: manifest"])),
            "updated_at": "x",
        }
    if draw(st.booleans()):
        hist = [{"timestamp": str(i), "action": "old"} for i in range(draw(st.integers(0, 60)))]
        vault[f"{base}/metadata"] = {"history": hist, **draw(json_obj)}
    for b in bindings:
        if draw(st.booleans()):
            vault[f"{base}/bindings/{b.guid}/credentials"] = draw(json_obj)
    if draw(st.booleans()):
        vault[f"{base}/redis/system"] = {"password": draw(text)}  # forge secret: never ours to touch
    params = draw(st.one_of(st.none(), json_obj))
    return uid, inst, dep, bindings, vault, params


def _plan(uid, inst, dep, bindings, fv, params, now, cfg):
    deps = [dep] if dep is not None else []
    m = match([inst] if inst else None, deps, {}, CATALOG).by_instance().get(uid)
    return plan_instance(
        uid,
        current=fv.tree(uid),
        now=now,
        cf=inst,
        deployment=dep if m else None,
        match=m,
        bindings=bindings,
        parameters=params,
        cfg=cfg,
    )


def _check_recovery_flags(uid, vault, plan):
    """Recovery is honest: existing credentials untouched, missing ones recovered or flagged."""
    had_creds = bool(vault.get(f"secret/{uid}/credentials"))
    wrote = [w for w in plan.writes if w.path == f"secret/{uid}/credentials"]
    if had_creds:
        assert not wrote and not plan.needs_credential_recovery
    elif plan.deployment_name is None:  # nothing deployed: nothing to recover, nothing flagged
        assert not wrote and not plan.needs_credential_recovery and plan.notes
    else:
        assert bool(wrote) != plan.needs_credential_recovery
        assert plan.credentials_recovered == bool(wrote)
        if plan.needs_credential_recovery:
            assert plan.credential_recovery_reason
        for w in wrote:  # never an unresolved placeholder passed off as a credential
            assert not any(is_placeholder(v) for v in w.data.values())


@PROFILE
@given(instance_case(), st.integers(1, 60))
def test_plan_apply_plan_again_is_empty_and_nothing_is_lost(case, history_limit):
    uid, inst, dep, bindings, vault, params = case
    cfg = DomainConfig(history_limit=history_limit)
    fv = FakeVault(vault)
    before = copy.deepcopy(fv.data)
    plan = _plan(uid, inst, dep, bindings, fv, params, "2026-01-01T00:00:00Z", cfg)
    _check_recovery_flags(uid, vault, plan)

    for w in plan.writes:
        assert is_allowed_write_path(w.path) and w.path.startswith(f"secret/{uid}")
        assert w.cas == fv.version.get(w.path, 0)
    assert plan.changed == bool(plan.writes)
    assert len({w.path for w in plan.writes}) == len(plan.writes)
    fv.apply(plan.writes)  # FakeVault checks every cas

    for path, old in before.items():
        new = fv.data[path]
        if path.endswith("/credentials") or "/redis/" in path:
            # an existing credential value is never deleted or changed
            assert all(k in new and new[k] == v for k, v in old.items()), path
        elif path == f"secret/{uid}":
            for f in USER_FIELDS:
                if f in old:
                    assert new[f] == old[f]
            assert set(old) <= set(new)
        else:
            assert set(old) <= set(new)  # nothing dropped
    meta = fv.data.get(f"secret/{uid}/metadata", {})
    # our entries are bounded; the broker's (every other action) are its audit trail, all kept
    old_history = before.get(f"secret/{uid}/metadata", {}).get("history", [])

    def is_ours(entry: object) -> bool:
        return isinstance(entry, dict) and entry.get("action") in OUR_HISTORY_ACTIONS

    def split(history: object) -> tuple[list, list]:
        # a history that is not a list is no audit trail: the plan starts a list in its place;
        # entries that are not objects are the broker's (or a user's) and are kept as they are
        entries = history if isinstance(history, list) else []
        theirs = [e.get("action") if isinstance(e, dict) else e for e in entries if not is_ours(e)]
        return [e for e in entries if is_ours(e)], theirs

    (ours, theirs), (ours_before, theirs_before) = split(meta.get("history", [])), split(old_history)
    assert len(ours) <= max(history_limit, len(ours_before)) and theirs == theirs_before

    again = _plan(uid, inst, dep, bindings, fv, params, "2026-06-01T00:00:00Z", cfg)
    assert again.writes == [], [w.path for w in again.writes]


plan_ids = st.lists(st.sampled_from(["redis", "cache", "small", "v2", "ha", "x-1", "pg"]), min_size=1, max_size=5).map(
    "-".join
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(plan_ids, uuids), min_size=1, max_size=15, unique_by=lambda t: t[1]), st.booleans())
def test_matching_recovers_every_pair_whatever_the_dashes(pairs, upper):
    from reconciler.models import BoshDeployment, CatalogPlan

    catalog = [
        CatalogPlan(
            foundation="cf",
            plan_guid="g",
            plan_id=p,
            plan_name=p,
            service_guid="s",
            service_id="svc",
            service_name="svc",
        )
        for p in {p for p, _ in pairs}
    ]
    insts = [cf_instance(u, p) for p, u in pairs]
    deps = [BoshDeployment(director="bosh", name=f"{p}-{u.upper() if upper else u}") for p, u in pairs]
    res = match(insts, deps, {}, catalog)
    got = {m.instance_id: (m.plan_id, m.strategy) for m in res.matches}
    assert got == {u: (p, "uuid_pattern") for p, u in pairs}
    assert res.conflicts == [] and res.unmatched_instances == []
