"""Worlds of several CF foundations and BOSH directors sharing one Vault, from generated ones.

``generate_multi(n, seed)`` makes two generated worlds (:func:`mockstack.generator.generate`)
and joins them: foundation ``us`` with director ``east`` (which serves only ``us``), foundation
``eu`` with director ``west`` (which serves every foundation), one Vault holding both. One
instance guid of ``us`` exists in ``eu`` too (a CF instance of the same guid, no deployment):
two instances. Vault holds the ``us`` one (its deployment is on ``east``, which serves only
``us``); the ``eu`` one is a CF instance without deployment (finding key ``eu:<guid>``) and is
never written. The expected outcome is the union of both, plus that.
"""

from __future__ import annotations

import copy
from typing import Any

from mockstack.generator import generate

FOUNDATIONS = ("us", "eu")
DIRECTORS = (("east", ["us"]), ("west", None))  # (name, foundations it serves; None = all)
UNION_LISTS = ("recoverable_credentials", "excluded_deployments", "foreign_deployments", "ignored_cf_instances",
               "index_ids", "legacy_backups", "failed_provisions", "unfetchable_parameters")
UNION_MAPS = ("matched", "unrecoverable_credentials", "recovered_credentials", "preserved_fields",
              "legacy_backup_paths", "lost_binding_credentials", "fetched_parameters", "in_flight", "name_mismatch")


def _shared_guid(world: dict[str, Any], expected: dict[str, Any]) -> str:
    """A healthy matched instance of the first world (in the index, with its whole tree)."""
    drifted = {i for kind in ("lost_index", "lost_tree", "lost_both", "delete_in_flight", "provisions_in_flight",
                              "upper_case_names", "unrecoverable_credentials", "extra_dash_plans")
               for i in expected.get("drift", {}).get(kind, [])}
    for iid in sorted(expected["matched"]):
        if iid in world["vault"].get("secret/db", {}) and f"secret/{iid}" in world["vault"] and iid not in drifted \
                and iid not in expected.get("in_flight", {}) and iid not in expected.get("name_mismatch", {}):
            return iid
    raise ValueError("no healthy matched instance to share between the foundations; use more instances")


def generate_multi(instances: int = 12, seed: int = 1, drift: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    (w1, e1), (w2, e2) = generate(instances, seed=seed, drift=drift), generate(instances, seed=seed + 1000,
                                                                               drift=drift)
    for (w, _), name in zip(((w1, e1), (w2, e2)), FOUNDATIONS, strict=True):
        w["cf"]["name"] = name
    for (w, _), (name, serves) in zip(((w1, e1), (w2, e2)), DIRECTORS, strict=True):
        w["bosh"]["name"] = name
        if serves is not None:
            w["bosh"]["foundations"] = list(serves)

    shared = _shared_guid(w1, e1)
    inst = copy.deepcopy(next(i for i in w1["cf"]["service_instances"] if i["guid"] == shared))
    plan_id = w1["vault"]["secret/db"][shared]["plan_id"]
    plan = next(p for p in w2["cf"]["service_plans"] if p["broker_catalog"]["id"] == plan_id)
    space = w2["cf"]["spaces"][0]["guid"]
    inst["relationships"] = {"service_plan": {"data": {"guid": plan["guid"]}}, "space": {"data": {"guid": space}}}
    inst["name"] = inst["name"] + "-eu"
    w2["cf"]["service_instances"].append(inst)

    vault = dict(w1["vault"])
    collisions = {p for p in w2["vault"] if p in vault and p != "secret/db" and w2["vault"][p] != vault[p]}
    vault.update({p: v for p, v in w2["vault"].items() if p != "secret/db" and p not in vault})
    vault["secret/db"] = {**w1["vault"].get("secret/db", {}), **w2["vault"].get("secret/db", {})}
    world = {"cf": [w1["cf"], w2["cf"]], "bosh": [w1["bosh"], w2["bosh"]], "vault": vault}

    exp: dict[str, Any] = {"foundations": list(FOUNDATIONS), "directors": [d for d, _ in DIRECTORS],
                           "shared_guid": shared, "twin": f"eu:{shared}"}
    exp["orphans"] = {k: sorted({*e1["orphans"].get(k, []), *e2["orphans"].get(k, [])})
                      for k in set(e1["orphans"]) | set(e2["orphans"])}
    exp["orphans"]["cf"] = sorted([*exp["orphans"]["cf"], f"eu:{shared}"])
    for key in UNION_LISTS:
        exp[key] = sorted({*e1.get(key, []), *e2.get(key, [])})
    for key in UNION_MAPS:
        exp[key] = {**e1.get(key, {}), **e2.get(key, {})}
    exp["untouched_paths"] = sorted({*e1["untouched_paths"], *e2["untouched_paths"]} - collisions)
    exp["by_foundation"] = {"us": sorted(e1["matched"]), "eu": sorted(e2["matched"])}
    exp["orphans_by_foundation"] = {"us": e1["orphans"], "eu": e2["orphans"]}
    exp["vault_paths"] = {"us": sorted(p for p in w1["vault"] if p.startswith("secret/") and p != "secret/db"),
                          "eu": sorted(p for p in w2["vault"] if p.startswith("secret/") and p != "secret/db"
                                       and p not in w1["vault"])}
    return world, exp
