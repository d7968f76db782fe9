"""The ports (reconciler/ports.py): the adapters and the in-memory fakes have every member,
with the same parameters, and the fakes keep the contracts the phases rely on."""

from __future__ import annotations

import inspect

import pytest

from reconciler import ports
from reconciler.apply import write_index
from reconciler.bosh import BoshClient
from reconciler.cf import CFClient
from reconciler.errors import CasConflict
from reconciler.recording import RecordingVault
from reconciler.store import Store
from reconciler.vault import VaultClient
from tests.fakes import FakeClock, MemoryKv, MemoryStore

IMPLEMENTATIONS = [
    (ports.KvStore, VaultClient), (ports.KvStore, RecordingVault), (ports.KvStore, MemoryKv),
    (ports.CloudController, CFClient), (ports.Director, BoshClient),
    (ports.ScratchStore, Store), (ports.ScratchStore, MemoryStore),
    (ports.RunStore, Store), (ports.RunStore, MemoryStore),
]


def _methods(protocol: type) -> dict[str, object]:
    return {n: v for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)}


def _parameters(fn: object) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize(("protocol", "cls"), IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_implementation_has_every_member_with_its_parameters(protocol, cls):
    for name, member in _methods(protocol).items():
        assert hasattr(cls, name), f"{cls.__name__} lacks {protocol.__name__}.{name}"
        theirs = getattr(cls, name)
        if callable(theirs) and not isinstance(inspect.getattr_static(cls, name), property):
            want = [p for p in _parameters(member) if p != "self"]
            got = [p for p in _parameters(theirs) if p != "self"]
            assert got[: len(want)] == want, f"{cls.__name__}.{name}{got} != {protocol.__name__}.{name}{want}"
    for name in [*vars(protocol), *getattr(protocol, "__annotations__", {})]:  # data members: mount, name
        if name.startswith("_") or name in _methods(protocol):
            continue
        assert isinstance(inspect.getattr_static(cls, name, None), property) or \
            f"self.{name} =" in inspect.getsource(cls.__init__), f"{cls.__name__} lacks {protocol.__name__}.{name}"


def test_fakes_are_instances_of_their_ports():
    kv, store = MemoryKv(), MemoryStore()
    assert isinstance(kv, ports.KvStore) and isinstance(RecordingVault(kv, dry_run=True), ports.KvStore)
    assert isinstance(store, ports.ScratchStore) and isinstance(store, ports.RunStore)
    assert isinstance(FakeClock(), ports.Clock)


def test_memory_kv_keeps_check_and_set():
    kv = MemoryKv({"secret/db": {"a": 1}})
    assert kv.read("secret/db") == ({"a": 1}, 1)
    assert kv.write("secret/db", {"a": 2}, cas=1) == 2
    with pytest.raises(CasConflict):
        kv.write("secret/db", {"a": 3}, cas=1)
    with pytest.raises(CasConflict):
        kv.write("secret/x", {}, cas=1)  # cas on an absent path
    assert kv.write("secret/x", {"b": 1}, cas=0) == 1


def test_index_write_rereads_and_remerges_on_a_conflict():
    kv = MemoryKv({"secret/db": {"broker": "x"}})
    calls = []

    def merge(current):
        calls.append(dict(current))
        if len(calls) == 1:  # the broker writes between our read and our write
            kv.write("secret/db", {**current, "broker2": "y"})
        return {**current, "ours": 1}

    result = write_index(kv, merge)
    assert result.written and result.attempts == 2
    assert kv.read_data("secret/db") == {"broker": "x", "broker2": "y", "ours": 1}  # the broker's field survived


def test_a_dry_run_over_the_fake_writes_nothing_and_records_each_change():
    kv = MemoryKv({"secret/i/credentials": {"password": "p"}})
    dry = RecordingVault(kv, dry_run=True)
    dry.write("secret/i/credentials", {"password": "q"}, cas=1)
    dry.delete("secret/i/other")
    assert kv.writes == [] and kv.read_data("secret/i/credentials") == {"password": "p"}
    assert [(c.op, c.path) for c in dry.changes] == [("write", "secret/i/credentials"), ("delete", "secret/i/other")]
    assert dry.read_data("secret/i/credentials") == {"password": "q"}  # the run sees its own planned write
