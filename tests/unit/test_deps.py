"""A handler's Deps: built on its first call from the function's environment, kept for the
container's life; a configuration that does not load is reported by the phase, not kept."""

import pytest

from reconciler import env
from reconciler.errors import ConfigError
from reconciler.phases.deps import ContainerDeps, Deps

TABLES = {"CACHE_TABLE": "cache", "STATE_TABLE": "state"}


@pytest.fixture(autouse=True)
def region(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("BLACKSMITH_RECONCILER_CONFIG_FILE", raising=False)
    monkeypatch.delenv("BLACKSMITH_RECONCILER_CONFIG_SSM", raising=False)


def test_a_container_keeps_the_deps_of_its_first_call_in_its_functions_environment():
    first, second = ContainerDeps(), ContainerDeps()  # two functions of the embedded engine
    with env.overlay({**TABLES, "BLACKSMITH_RECONCILER_BATCH_SIZE": "3"}):
        a = first()
    with env.overlay({**TABLES, "BLACKSMITH_RECONCILER_BATCH_SIZE": "4"}):
        b = second()
        assert first() is a  # kept: not rebuilt from this call's environment
    assert (a.settings.reconciler.batch_size, b.settings.reconciler.batch_size) == (3, 4)
    assert first.settings() is a.settings


def test_a_configuration_that_does_not_load_is_raised_where_read_and_tried_again(tmp_path):
    bad = tmp_path / "blacksmith.conf"
    bad.write_text("reconciler:\n  batch_size: -1\n")
    container = ContainerDeps()
    with env.overlay({**TABLES, "BLACKSMITH_RECONCILER_CONFIG_FILE": str(bad)}):
        broken = container()
        assert broken.store is not None  # RecordFailure still records the run's failure
        assert broken.metrics_enabled() is True
        with pytest.raises(ConfigError, match="batch_size"):
            _ = broken.settings
        bad.write_text("reconciler:\n  batch_size: 7\n")
        fixed = container()
    assert fixed is not broken and fixed.settings.reconciler.batch_size == 7


def test_tests_and_the_engine_give_their_own_ports():
    kv, directors = object(), {"bosh": object()}
    deps = Deps.build(None, store=None, kv_factory=lambda version: kv, directors_factory=lambda: directors)
    assert deps.kv(2) is kv and deps.directors() is directors
    with pytest.raises(RuntimeError, match="without settings"):
        _ = deps.settings


class _CountingStore:
    def __init__(self, fail: bool = False):
        self.added: list[dict] = []
        self.fail = fail

    def add_metrics(self, **deltas):
        if self.fail:
            raise RuntimeError("DynamoDB down")
        self.added.append(deltas)


@pytest.mark.parametrize("store_fails", [False, True])
def test_an_invocation_stores_its_api_request_and_error_counts_once(store_fails):
    from reconciler.errors import Unavailable
    from reconciler.resilience import ApiPolicy, Resilience, take_all_counts

    take_all_counts()  # what earlier tests' clients left
    store = _CountingStore(fail=store_fails)
    container = ContainerDeps(lambda: Deps.build(None, store))

    def phase(event, context, deps):
        res = Resilience(ApiPolicy.from_settings(None, "bosh", "west"), sleep=lambda s: None)
        res.call(lambda: "ok")

        def down():
            raise Unavailable("GET /info: 503", api="bosh", status=503)

        with pytest.raises(Unavailable):
            res.call(down, what="GET /info")
        return {"done": True}

    assert container.run(phase, {}, None) == {"done": True}  # a store that fails does not fail the phase
    if store_fails:
        return
    (added,) = store.added
    attempts = added["api_requests_total__bosh"]
    assert attempts >= 2 and added["api_errors_total__bosh"] == attempts - 1
    tag = b"west".hex()
    assert added[f"api_requests_total__bosh__m_{tag}"] == attempts
    assert take_all_counts() == {}  # flushed: the next invocation starts from zero
