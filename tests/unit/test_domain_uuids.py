import pytest

from reconciler.domain.uuids import (
    embedded_uuids,
    instance_path,
    is_allowed_write_path,
    is_uuid,
    normalize_uuid,
    split_deployment_name,
    trailing_uuid,
)

U = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"


def test_uuid_validation_and_normalisation():
    assert is_uuid(U) and is_uuid(U.upper())
    assert normalize_uuid(U.upper()) == U
    assert normalize_uuid(f" {U} ") == U
    for bad in ["", "x", U[:-1], U + "0", U.replace("-", ""), "g" + U[1:], None, 42, f"../{U}"]:
        assert normalize_uuid(bad) is None


def test_split_with_catalog_not_by_counting_dashes():
    plans = {"redis-cache-small", "redis-cache", "postgresql-ha-large-v2"}
    assert split_deployment_name(f"redis-cache-small-{U}", plans) == ("redis-cache-small", U)
    assert split_deployment_name(f"redis-cache-{U}", plans) == ("redis-cache", U)
    assert split_deployment_name(f"postgresql-ha-large-v2-{U.upper()}", plans) == ("postgresql-ha-large-v2", U)
    assert split_deployment_name(f"redis-unknown-{U}", plans) is None
    assert split_deployment_name(f"redis-cache-small-{U[:-1]}x", plans) is None
    assert split_deployment_name(f"redis-cache-small{U}", plans) is None  # no dash before the UUID


def test_trailing_and_embedded():
    assert trailing_uuid(f"a-b-c-{U}") == ("a-b-c", U)
    assert trailing_uuid(U) is None  # no prefix
    assert trailing_uuid(f"-{U}") is None
    assert embedded_uuids(f"old-{U}-copy") == [U]
    assert embedded_uuids(f"x{U}") == []  # glued to other characters


def test_instance_path_refuses_non_uuids():
    assert instance_path(U, "bindings", U, "credentials") == f"secret/{U}/bindings/{U}/credentials"
    for bad in [U.upper(), "db", "../x", "", "backups"]:
        with pytest.raises(ValueError):
            instance_path(bad)
    with pytest.raises(ValueError):
        instance_path(U, "..")
    with pytest.raises(ValueError):
        instance_path(U, "a/b")


@pytest.mark.parametrize(
    "path,ok",
    [
        ("secret/db", True),
        (f"secret/{U}", True),
        (f"secret/{U}/manifest", True),
        (f"secret/{U}/bindings/{U}/credentials", True),
        (f"secret/backups/{U}/abc123", True),
        ("secret/backups", False),
        (f"secret/backups/{U}", False),
        (f"secret/{U.upper()}", False),
        ("secret/db/x", False),
        ("secret/other", False),
        (f"secret/{U}/../db", False),
        (f"secret//{U}", False),
        (f"kv/{U}", False),
        (f"secret/{U}/", False),
    ],
)
def test_allowed_write_paths(path, ok):
    assert is_allowed_write_path(path) is ok
