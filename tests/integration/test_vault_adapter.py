"""VaultClient against the Vault emulator and a real OpenBao (same assertions): KV v2 and v1, cas,
listing, trees, errors, sealing, faults in front of the server; AWS auth and TLS on the emulator."""

import logging
from pathlib import Path

import botocore.credentials
import pytest

from reconciler.errors import (
    CasConflict,
    ConfigError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
    Unavailable,
    VaultSealed,
)
from reconciler.vault import VaultClient
from tests.integration.vault_fixtures import (
    BACKENDS,
    IID,
    PASSWORD,
    SECRETS,
    TOKEN,
    index_world,
    instance_world,
    vault_env,
)


@pytest.mark.parametrize("kv", [2, 1])
@pytest.mark.parametrize("backend", BACKENDS)
def test_read_write_list_tree(kv, backend):
    with vault_env({**instance_world(), **index_world(IID)}, kv_version=kv, backend=backend) as env:
        c = env.client
        assert c.kv_version == kv  # detected from sys/mounts
        data, version = c.read(f"secret/{IID}/credentials")
        assert data["password"] == PASSWORD and version == (1 if kv == 2 else None)
        assert c.read("secret/nope") is None and c.read_data("secret/nope") is None
        assert c.list(f"secret/{IID}") == ["bindings/", "credentials", "manifest", "metadata", "redis/"]
        assert c.list("secret/") == [f"{IID}", f"{IID}/", "db"]
        assert c.list("secret/empty/") == []
        tree = c.read_tree(f"secret/{IID}")
        assert set(tree) == set(instance_world())  # root included, every subpath
        assert all(d == instance_world()[p] for p, (d, _v) in tree.items())
        new = c.write(f"secret/{IID}/extra", {"a": 1}, cas=0)
        assert new == (1 if kv == 2 else None)
        assert c.read_data(f"secret/{IID}/extra") == {"a": 1}
        with pytest.raises(CasConflict, match=f"secret/{IID}/extra"):
            c.write(f"secret/{IID}/extra", {"a": 2}, cas=0)
        if kv == 2:
            assert c.write(f"secret/{IID}/extra", {"a": 2}, cas=1) == 2
            with pytest.raises(CasConflict):
                c.write(f"secret/{IID}/extra", {"a": 3}, cas=1)
            assert c.read(f"secret/{IID}/extra") == ({"a": 2}, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tree_excludes_folder_and_delete_only_backups(backend):
    world = {**instance_world(), f"secret/{IID}/backups/" + "a" * 64: {"data": {}}, "secret/backups/x/" + "b" * 64: {}}
    with vault_env(world, backend=backend) as env:
        c = env.client
        tree = c.read_tree(f"secret/{IID}", exclude=[f"secret/{IID}/backups/"])
        assert not [p for p in tree if "/backups/" in p]
        for bad in (f"secret/{IID}", f"secret/{IID}/credentials", "secret/db", "secret/backups"):
            with pytest.raises(InvalidInput, match="only backups"):
                c.delete(bad)
        c.delete("secret/backups/x/" + "b" * 64)
        assert "secret/backups/x/" + "b" * 64 not in env.emulator.snapshot()
        assert c.list("secret/backups/") == []  # metadata gone too (not a soft delete)


@pytest.mark.parametrize("path", ["db", "/secret/db", "secret/../db", "secret//db", "secret/a/../../x", "other/x",
                                  "secret/a\nb", 5])
def test_bad_paths_refused(path):
    with vault_env({}) as env, pytest.raises(InvalidInput):
        env.client.read(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_permission_denied_names_path_never_token(caplog, backend):
    caplog.set_level(logging.DEBUG)
    with vault_env(instance_world(), backend=backend) as env:
        bad = VaultClient(env.server.url, token="wrong-" + TOKEN, kv_version=2)
        with pytest.raises(PermissionDenied) as err:
            bad.read(f"secret/{IID}/credentials")
        assert f"secret/{IID}/credentials" in str(err.value)
        assert err.value.status == 403
        assert "wrong-" not in str(err.value) and TOKEN not in repr(bad)
    for secret in SECRETS:
        assert secret not in caplog.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_sealed_is_fast_and_single_request(backend):
    with vault_env(instance_world(), backend=backend) as env:
        env.client.kv_version  # noqa: B018 - detect before sealing
        env.emulator.sealed = True
        env.server.log.clear()
        with pytest.raises(VaultSealed, match="sealed"):
            env.client.read(f"secret/{IID}/credentials")
        with pytest.raises(VaultSealed):
            env.client.health()
        assert env.server.log.count("vault") == 2  # one request each: no retry storm in the adapter
        env.emulator.sealed = False
        assert env.client.health()["sealed"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_unavailable_and_rate_limited_mapping(backend):
    with vault_env(instance_world(), backend=backend) as env:
        env.client.kv_version  # noqa: B018
        env.server.set_faults(error_rate=1.0, error_codes=[502])
        with pytest.raises(Unavailable):
            env.client.read(f"secret/{IID}")
        env.server.set_faults(error_rate=1.0, error_codes=[429])
        with pytest.raises(RateLimited):
            env.client.read(f"secret/{IID}")
        env.server.reset_faults()
        port = env.server.port
    dead = VaultClient(f"http://127.0.0.1:{port}", token=TOKEN, kv_version=2, timeout=2)
    with pytest.raises(Unavailable, match="cannot connect"):
        dead.read("secret/x")


@pytest.mark.parametrize("backend", BACKENDS)
def test_policy_hook_wraps_every_call(backend):
    calls = []

    class Policy:
        def call(self, fn, *, what="call"):
            calls.append(what)
            return fn()

    with vault_env(instance_world(), backend=backend) as env:
        c = VaultClient(env.server.url, token=TOKEN, policy=Policy())
        c.read(f"secret/{IID}")
        c.write(f"secret/{IID}/x", {"a": 1}, cas=0)
        c.list(f"secret/{IID}/")
    assert calls == ["vault detect sys/mounts", f"vault read secret/{IID}", f"vault write secret/{IID}/x",
                     f"vault list secret/{IID}/"]


def test_aws_iam_login_and_relogin(caplog):
    caplog.set_level(logging.DEBUG)
    creds = botocore.credentials.Credentials("AKIAEXAMPLEKEY123456", "aws-secret-key-Zz9", "session-token-Yy8")
    with vault_env(instance_world(), emulator_aws_role="reconciler") as env:
        c = VaultClient(env.server.url, auth="aws", aws_role="reconciler", aws_credentials=creds, kv_version=2)
        assert c.read_data(f"secret/{IID}/credentials")["password"] == PASSWORD
        assert env.server.log.count("vault", "POST") == 1  # one login
        # the issued token expires: the next call logs in again once and succeeds
        env.emulator._tokens.clear()
        assert c.read_data(f"secret/{IID}")["instance_id"] == IID
        assert env.server.log.count("vault", "POST") == 2
        wrong = VaultClient(env.server.url, auth="aws", aws_role="nobody", aws_credentials=creds, kv_version=2)
        with pytest.raises(Exception, match="role 'nobody'"):
            wrong.read("secret/x")
    for s in ("aws-secret-key-Zz9", "session-token-Yy8", *SECRETS):
        assert s not in caplog.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_config_errors(backend):
    with pytest.raises(ConfigError, match="address"):
        VaultClient("vault.example.com", token="t")
    with pytest.raises(ConfigError, match="no token"):
        VaultClient("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="accepted 'token' or 'aws'"):
        VaultClient("http://127.0.0.1:1", auth="ldap")
    with vault_env({}, backend=backend) as env:
        c = VaultClient(env.server.url, token=TOKEN, mount="kv")
        with pytest.raises(ConfigError, match="cannot detect the KV version of mount 'kv/'"):
            c.read("kv/x")


def test_tls_verified_against_ca(tmp_path):
    tls = pytest.importorskip("mockstack.tls")
    from mockstack.base import EmulatorServer
    from mockstack.vault import VaultEmulator

    material = tls.make_tls(tmp_path) if hasattr(tls, "make_tls") else None
    if material is None:
        pytest.skip("mockstack.tls has no make_tls helper")
    server = EmulatorServer(VaultEmulator(instance_world(), token=TOKEN), ssl_context=material.server_context()).start()
    try:
        ok = VaultClient(server.url.replace("127.0.0.1", "localhost"), token=TOKEN, ca_cert=str(material.ca_path))
        assert ok.read_data(f"secret/{IID}/credentials")["password"] == PASSWORD
        with pytest.raises(Unavailable, match="TLS"):
            VaultClient(server.url, token=TOKEN).read("secret/x")
        # from the configuration, with the CA given as PEM text
        from reconciler.config import load_settings

        pem = Path(material.ca_path).read_text()
        indented = "\n".join("    " + line for line in pem.strip().splitlines())
        text = f"vault:\n  address: {server.url}\n  token: {TOKEN}\n  ca_cert: |\n{indented}\n"
        configured = VaultClient.from_settings(load_settings(env={}, file_text=text))
        assert configured.read_data(f"secret/{IID}/credentials")["password"] == PASSWORD
    finally:
        server.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_settings_with_resilience_retries_5xx_not_sealed(backend):
    from reconciler.config import load_settings

    with vault_env(instance_world(), backend=backend) as env:
        text = ("reconciler:\n  retry: {max_attempts: 3, initial_delay: 10ms, max_delay: 20ms}\n"
                f"vault:\n  address: {env.server.url}\n  token: {TOKEN}\n  kv_version: 2\n")
        settings = load_settings(env={}, file_text=text)
        c = VaultClient.from_settings(settings)
        assert TOKEN not in repr(c)
        assert c.read_data(f"secret/{IID}/credentials")["password"] == PASSWORD
        env.server.log.clear()
        env.server.set_faults(error_rate=1.0, error_codes=[502])
        with pytest.raises(Unavailable):
            c.read(f"secret/{IID}")
        assert env.server.log.count("vault") == 3  # max_attempts
        env.server.reset_faults()
        env.server.log.clear()
        env.emulator.sealed = True
        with pytest.raises(VaultSealed):
            c.read(f"secret/{IID}")
        assert env.server.log.count("vault") == 1  # sealed is never retried


@pytest.mark.parametrize("backend", BACKENDS)
def test_body_over_the_servers_limit_is_too_large_and_writes_nothing(backend):
    from reconciler.errors import TooLarge

    with vault_env(instance_world(), backend=backend) as env:
        c = env.client
        before = env.emulator.snapshot()
        big = {"blob": "x" * (32 * 1024 * 1024 + 1024)}  # just over Vault's 32 MiB max_request_size
        c.kv_version  # noqa: B018 - detect first
        env.server.log.clear()
        with pytest.raises(TooLarge, match=f"secret/{IID}/huge: request too large for Vault \\(413"):
            c.write(f"secret/{IID}/huge", big, cas=0)
        assert env.server.log.count("vault") == 1  # never retried
        assert [e.status for e in env.server.log.entries()] == [413]
        assert env.emulator.snapshot() == before
        assert c.write(f"secret/{IID}/small", {"blob": "x" * 1024}, cas=0) == 1  # the server is fine after it
