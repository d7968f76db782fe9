"""A second attempt of the same run over an instance's half-written tree takes no second backup:
the first attempt already protected the state before the run's writes (a backup, or nothing to
protect), and the tree it left is a state the run never meant to keep."""

from __future__ import annotations

import uuid
from typing import Any

from reconciler import backup as bk
from reconciler.apply import BackupSettings, apply_plan
from reconciler.errors import NotFound, Unavailable
from reconciler.models import VaultWrite
from tests.fakes import MemoryKv

IID = str(uuid.UUID(int=7))
ROOT = f"secret/{IID}"
NOW = 1_800_000_000.0


class FailingRootKv(MemoryKv):
    """The root write answers 502 (after its retries) while ``failing``: the root is written last."""

    failing = True

    def list(self, folder: str) -> list[str]:  # VaultClient.list: an empty folder lists nothing
        try:
            return super().list(folder)
        except NotFound:
            return []

    def write(self, path: str, data: Any, *, cas: int | None = None) -> int | None:
        if path == ROOT and self.failing:
            raise Unavailable(f"{path}: 502 Bad Gateway", api="vault", status=502)
        return super().write(path, data, cas=cas)


def plan(meta_note: str) -> list[VaultWrite]:
    return [VaultWrite(path=f"{ROOT}/credentials", data={"password": "recovered"}),
            VaultWrite(path=f"{ROOT}/metadata", data={"history": [{"description": meta_note}]}),
            VaultWrite(path=ROOT, data={"plan_id": "p", "reconciled": True})]


def backups(kv: MemoryKv) -> list[str]:
    return sorted(p for p in kv.data if p.startswith(f"secret/backups/{IID}/"))


def two_attempts(world: dict[str, Any], index: dict[str, Any], protected: set[str] | None) -> FailingRootKv:
    kv = FailingRootKv(world)
    first = apply_plan(kv, {IID: plan("first try")}, settings=BackupSettings(), index=index, now=NOW,
                       protected=protected)
    assert first.instances[0].status == "failed" and "502" in (first.instances[0].error or "")
    assert f"{ROOT}/metadata" in kv.data and ROOT not in kv.data  # half-written: everything but the root
    kv.failing = False
    # the retry plans from fresh reads: the metadata it finds gets one more history entry
    second = apply_plan(kv, {IID: plan("second try")}, settings=BackupSettings(), index=index, now=NOW + 5,
                        protected=protected)
    assert second.instances[0].status == "written"
    return kv


def test_a_lost_tree_half_written_by_the_first_try_is_not_backed_up_by_the_second():
    protected: set[str] = set()
    kv = two_attempts({}, {}, protected)
    assert backups(kv) == [] and protected == {IID}  # nothing to protect, as a run without the fault
    assert kv.data[ROOT]["reconciled"] is True


def test_a_tree_backed_up_by_the_first_try_gets_no_second_backup_of_its_half_written_state():
    world = {f"{ROOT}/metadata": {"history": [{"description": "before"}]}, f"{ROOT}/manifest": {"manifest": "m"}}
    index = {IID: {"service_id": "s", "plan_id": "p"}}
    kv = two_attempts(world, index, set())
    (path,) = backups(kv)  # one backup, of the tree as it was before the run
    decoded = bk.decode_backup(kv.data[path], instance_id=IID, key=path.rsplit("/", 1)[1])
    assert decoded.tree == world and decoded.index_entry == index[IID]


def test_without_the_runs_record_each_attempt_backs_up_what_it_finds():
    """What ``protected`` prevents: the second attempt's backup of the first one's half-written tree."""
    assert len(backups(two_attempts({}, {}, None))) == 1
    world = {f"{ROOT}/metadata": {"history": [{"description": "before"}]}}
    assert len(backups(two_attempts(world, {IID: {"plan_id": "p"}}, None))) == 2
