"""Names that a hostile or broken CF/BOSH (or a human editing Vault) could send. None may
become a Vault path outside ``secret/<uuid>/...``, ``secret/db`` or ``secret/backups/<uuid>/...``."""

from __future__ import annotations

import json

import pytest

from reconciler import backup
from reconciler.domain.uuids import (
    embedded_uuids,
    instance_path,
    is_allowed_write_path,
    is_normal_uuid,
    is_uuid,
    normalize_uuid,
    split_deployment_name,
)
from reconciler.errors import InvalidInput
from reconciler.vault import VaultClient

U = "0d0e5b4a-1111-4222-8333-444455556666"


@pytest.mark.parametrize("value", [U + "\n", U.upper() + "\n", U + "\x00", U + " ", "\n" + U])
def test_a_trailing_newline_is_not_a_uuid(value):
    # "$" in a regex matches before a final newline: every guard must use \Z
    assert not is_uuid(value)
    assert not is_normal_uuid(value)


def test_upper_case_and_padded_uuids_normalise_to_the_lower_case_path_segment():
    assert normalize_uuid(U.upper()) == U and normalize_uuid(f"  {U}\n") == U
    assert instance_path(normalize_uuid(U.upper()), "credentials") == f"secret/{U}/credentials"


@pytest.mark.parametrize("path", [
    f"secret/{U}\n/credentials", f"secret/{U}/credentials\n", "secret/db\n", f"secret/backups/{U}/x\n",
    f"secret/{U}/../db", f"secret/{U}//x", "secret/../secret/db", f"secret/{U.upper()}/x", "secret/not-a-uuid/x",
    f"secret/backups/{U}", f"secret/{U}/ünïcode", f"other/{U}", f"secret/{U}/" + "a/" * 3 + " x",
])
def test_write_guard_refuses_paths_outside_the_tree(path):
    assert not is_allowed_write_path(path)


@pytest.mark.parametrize("path", [f"secret/{U}", f"secret/{U}/bindings/{U}/credentials", "secret/db",
                                  f"secret/backups/{U}/{'a' * 64}"])
def test_write_guard_accepts_the_tree(path):
    assert is_allowed_write_path(path)


@pytest.mark.parametrize("part", ["..", ".", "a/b", "a\n", "", "ü", " x", "x y"])
def test_instance_path_refuses_hostile_segments(part):
    with pytest.raises(ValueError):
        instance_path(U, part)


@pytest.mark.parametrize("path", [f"secret/{U}\n", f"secret/{U}/x\n", "secret/db\n", "secret/a/../b", "secret/",
                                  "secret//x", "secret/\x00", 42, "other/x"])
def test_vault_client_refuses_hostile_paths_before_any_request(path):
    client = VaultClient.__new__(VaultClient)  # the path check needs no connection
    client.mount = "secret"
    with pytest.raises(InvalidInput):
        client._split(path)


@pytest.mark.parametrize("name", [
    f"redis-small-{U}/../../db", f"../redis-small-{U}", f"redis small-{U}", f"rédis-small-{U}",
    "r" * 300 + f"-{U}", f"redis-small-{U}\n", f"redis-small-{U}x", "", "..", "/", "a" * 300,
])
def test_hostile_deployment_names_are_not_split_into_a_plan_and_instance(name):
    assert split_deployment_name(name, ["redis-small"]) is None


def test_uuids_embedded_in_hostile_names_are_normalised():
    assert embedded_uuids(f"x/{U.upper()}/..") == [U]
    assert embedded_uuids(f"{U}ab") == []  # glued to more hex: not a UUID boundary


@pytest.mark.parametrize("instance_id", [U + "\n", "../db", "a" * 300, U.upper() + "/x", "db", "backups", ".."])
def test_backup_paths_refuse_hostile_instance_ids(instance_id):
    with pytest.raises(InvalidInput):
        backup.backup_path(instance_id, "a" * 64)


def test_backup_sha_with_a_trailing_newline_is_refused():
    with pytest.raises(InvalidInput):
        backup.check_sha("a" * 64 + "\n")


@pytest.fixture
def store(monkeypatch):
    """The real Store on moto's DynamoDB."""
    import boto3
    from moto import mock_aws

    from reconciler.store import Store, create_tables

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client, "cache", "state")
        yield Store("cache", "state", client)


@pytest.mark.parametrize("name", ["x" * 1100, "é" * 600, ""])
def test_deployment_names_dynamodb_cannot_key_on_are_not_cached(store, name):
    """A hostile Director's 2 KB deployment name must not fail a whole scan batch on the cache."""
    store.put_cached_deployment("bosh", name, {"name": name}, 60)  # no ValidationException
    assert store.get_cached_deployment("bosh", name) is None
    store.put_cached_deployment("bosh", "x" * 1024, {"ok": True}, 60)  # at the limit: cached
    assert store.get_cached_deployment("bosh", "x" * 1024) == {"ok": True}


def test_recorded_errors_are_masked_like_the_logs(store):
    """A remote error that echoes a credential (a broken UAA, a proxy) must not reach /b/status."""
    store.record_error("r", "DiscoverCF", "https://admin:pw-in-url@uaa.example",
                       "cf/uaa POST /oauth/token: HTTP 401 (client_secret=s3cr3t-echoed, "
                       "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig, token hvs.ABCDEFGHIJKLMNOPQRST)")
    error = store.recent_errors()[0]
    text = json.dumps(error)
    for secret in ("pw-in-url", "s3cr3t-echoed", "eyJhbGciOiJIUzI1NiJ9", "ABCDEFGHIJKLMNOPQRST"):
        assert secret not in text, secret
    assert "401" in error["message"]  # the error itself is still there
