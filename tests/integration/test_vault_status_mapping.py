"""Vault errors mapped by the status of Vault's answer itself (hvac 2.x exceptions carry no
status), one test per status, over real HTTP with the real guard (retries, breaker) around each
call, against the emulator and a real server (OpenBao): statuses a real server gives on demand
come from it (403 from a policy, 404, 400 cas, 413 over 32 MiB, sealed 503); the others (409,
412, 429, 5xx) are injected by the recording front both sit behind, in Vault's error shape."""

import pytest

from reconciler.errors import (
    CasConflict,
    ExternalAPIError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
    TooLarge,
    Unavailable,
    VaultSealed,
)
from reconciler.resilience import ApiPolicy, BreakerConfig, Resilience, RetryPolicy
from reconciler.vault import VaultClient
from tests.integration.vault_fixtures import BACKENDS, IID, SECRETS, instance_world, vault_env

CREDS = f"secret/{IID}/credentials"


def guard(attempts: int = 3) -> Resilience:
    policy = ApiPolicy(api="vault", retry=RetryPolicy(max_attempts=attempts, initial_delay=0.0, jitter=0.0),
                       circuit_breaker=BreakerConfig(failure_threshold=100))
    return Resilience(policy, None, local_state={}, sleep=lambda s: None)


def requests_seen(env) -> int:
    return env.server.log.count("vault")


def inject(env, status: int, **knobs) -> None:
    env.server.set_faults(error_rate=1.0, error_codes=[status], **knobs)


# a policy that may not read the credentials and may only read bindings (OpenBao enforces it;
# the emulator's deny() refuses the same capabilities)
POLICY = f"""
path "secret/data/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "secret/metadata/*" {{ capabilities = ["read", "list", "delete"] }}
path "sys/mounts" {{ capabilities = ["read"] }}
path "secret/data/{IID}/credentials" {{ capabilities = ["deny"] }}
path "secret/data/{IID}/bindings/*" {{ capabilities = ["read", "list"] }}
"""


def limited_client(env, backend: str) -> VaultClient:
    if backend == "openbao":
        token = env.emulator.token_with_policy("reconciler-limited", POLICY)
        return VaultClient(env.server.url, token=token, timeout=5.0, policy=guard())
    env.emulator.deny(f"secret/{IID}/credentials", "read")
    env.emulator.deny(f"secret/{IID}/bindings", "create", "update")
    return env.client


def too_large(env, backend: str) -> int:
    """A body size over the server's limit (OpenBao: its default 32 MiB; the emulator: set low)."""
    if backend == "openbao":
        return 33 * 1024 * 1024
    env.emulator.max_request_size = 64 * 1024
    return 200_000


def no_secret_in(exc: BaseException) -> None:
    assert not any(s in str(exc) for s in SECRETS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_400_rejected_never_retried(backend):
    with vault_env(instance_world(), kv_version=2, policy=guard(), backend=backend) as env:
        env.client.kv_version  # noqa: B018 - detected before the fault
        inject(env, 400)
        before = requests_seen(env)
        with pytest.raises(Rejected, match=f"{CREDS}: rejected by Vault \\(400\\)") as err:
            env.client.read(CREDS)
        assert err.value.status == 400 and requests_seen(env) - before == 1
        no_secret_in(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_400_check_and_set_is_a_conflict(backend):
    with vault_env(instance_world(), policy=guard(), backend=backend) as env:
        with pytest.raises(CasConflict, match="check-and-set") as err:
            env.client.write(CREDS, {"password": "x"}, cas=0)  # exists: Vault answers 400 cas mismatch
        assert err.value.status == 400


@pytest.mark.parametrize("backend", BACKENDS)
def test_403_names_path_and_capability(backend):
    with vault_env(instance_world(), policy=guard(), backend=backend) as env:
        client = limited_client(env, backend)
        client.kv_version  # noqa: B018
        before = requests_seen(env)
        with pytest.raises(PermissionDenied, match=f"needs 'read' on {CREDS}") as err:
            client.read(CREDS)
        assert err.value.status == 403 and requests_seen(env) - before == 1  # never retried
        with pytest.raises(PermissionDenied, match=f"needs 'create/update' on secret/{IID}/bindings/b/credentials"):
            client.write(f"secret/{IID}/bindings/b/credentials", {"a": 1}, cas=0)
        assert client.read(f"secret/{IID}/manifest") is not None  # other paths unaffected
        no_secret_in(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_404_read_is_absent_write_is_not_found(backend):
    with vault_env(instance_world(), policy=guard(), backend=backend) as env:
        assert env.client.read("secret/nothing/here") is None
    with vault_env(instance_world(), kv_version=2, mount="nomount", policy=guard(), backend=backend) as env:
        env.client._kv_version = 2  # the mount does not exist: Vault answers 404 "no handler for route"
        with pytest.raises(NotFound, match="nomount/x") as err:
            env.client.write("nomount/x", {"a": 1})
        assert err.value.status == 404


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("status", [409, 412])
def test_409_412_conflicts_never_retried(status, backend):
    with vault_env(instance_world(), kv_version=2, policy=guard(), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        inject(env, status)
        before = requests_seen(env)
        with pytest.raises(CasConflict, match=f"conflict \\({status}\\)") as err:
            env.client.write(CREDS, {"a": 1}, cas=1)
        assert err.value.status == status and requests_seen(env) - before == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_413_too_large_is_a_clear_error_never_retried(backend):
    with vault_env(instance_world(), policy=guard(), backend=backend) as env:
        size = too_large(env, backend)
        env.client.kv_version  # noqa: B018
        before = requests_seen(env)
        with pytest.raises(TooLarge, match=f"{CREDS}: request too large for Vault \\(413") as err:
            env.client.write(CREDS, {"blob": "x" * size}, cas=1)
        assert err.value.status == 413 and requests_seen(env) - before == 1
        assert not isinstance(err.value, Unavailable)  # not "Vault unavailable": no breaker failure
        assert env.emulator.read(CREDS) == instance_world()[CREDS]  # nothing written


@pytest.mark.parametrize("backend", BACKENDS)
def test_429_rate_limited_with_retry_after(backend):
    with vault_env(instance_world(), kv_version=2, policy=guard(attempts=1), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        inject(env, 429, retry_after_s=7)
        with pytest.raises(RateLimited) as err:
            env.client.read(CREDS)
        assert err.value.status == 429 and err.value.retry_after == 7


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_unavailable_with_status(status, backend):
    with vault_env(instance_world(), kv_version=2, policy=guard(attempts=1), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        inject(env, status)
        with pytest.raises(Unavailable, match=f"Vault error {status}") as err:
            env.client.read(CREDS)
        assert err.value.status == status and not isinstance(err.value, VaultSealed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_503_sealed(backend):
    with vault_env(instance_world(), policy=guard(), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        env.emulator.sealed = True
        before = requests_seen(env)
        with pytest.raises(VaultSealed, match="is sealed") as err:
            env.client.read(CREDS)
        assert err.value.status == 503 and requests_seen(env) - before == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_unexpected_status_keeps_it(backend):
    with vault_env(instance_world(), kv_version=2, policy=guard(), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        inject(env, 418)
        with pytest.raises(ExternalAPIError, match="unexpected Vault answer 418") as err:
            env.client.read(CREDS)
        assert err.value.status == 418 and not isinstance(err.value, Unavailable)


@pytest.mark.parametrize("backend", BACKENDS)
def test_413_fails_that_instance_alone_and_the_batch_goes_on(backend):
    from reconciler.apply import BackupSettings, apply_plan
    from reconciler.models import VaultWrite
    from tests.integration.vault_fixtures import IID2, index_world

    world = {**instance_world(IID), **instance_world(IID2), **index_world(IID, IID2)}
    with vault_env(world, policy=guard(), backend=backend) as env:
        big = [VaultWrite(path=f"secret/{IID}/manifest", data={"manifest": "x" * too_large(env, backend)}, cas=1)]
        small = [VaultWrite(path=f"secret/{IID2}/manifest", data={"manifest": "name: ok\n"}, cas=1)]
        report = apply_plan(env.client, {IID: big, IID2: small}, settings=BackupSettings(), now=1_704_400_000.0)
        by_id = {r.instance_id: r for r in report.instances}
        assert report.aborted is None
        assert by_id[IID].status == "failed" and "TooLarge" in by_id[IID].error and "413" in by_id[IID].error
        assert by_id[IID2].status == "written"
        assert env.emulator.read(f"secret/{IID}/manifest") == world[f"secret/{IID}/manifest"]
