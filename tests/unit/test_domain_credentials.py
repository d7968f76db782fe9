import yaml

from reconciler.domain import recover_credentials, service_kind
from reconciler.models import VM
from tests.unit.domain_support import postgres_manifest, rabbitmq_manifest, redis_manifest, vms_for

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"


def test_redis_forge_shape():
    creds, reason = recover_credentials("redis", redis_manifest("d", A), vms_for("standalone", "10.1.2.3"), A)
    assert reason == ""
    assert creds == {"host": "10.1.2.3", "port": 6379, "password": "s3cret-redis", "url": "redis://10.1.2.3:6379"}


def test_postgresql_forge_shape_and_escaping():
    creds, _ = recover_credentials(
        "postgresql", postgres_manifest("d", A, "pg@dmin", "p/ss:w"), vms_for("postgresql"), A
    )
    assert set(creds) == {"username", "password", "host", "db_host", "port", "db_name", "uri", "jdbc_uri"}
    assert creds["port"] == 5432 and creds["db_name"] == "postgres" and creds["db_host"] == creds["host"] == "10.0.0.5"
    assert creds["password"] == "p/ss:w"
    assert creds["uri"] == "postgres://pg%40dmin:p%2Fss%3Aw@10.0.0.5:5432/postgres"
    assert creds["jdbc_uri"].startswith("jdbc:postgresql://10.0.0.5:5432/postgres?user=pg%40dmin")


def test_postgres_boshrelease_users_block():
    doc = {
        "instance_groups": [
            {
                "name": "postgres",
                "jobs": [
                    {
                        "name": "postgres",
                        "properties": {
                            "postgres": {
                                "databases": [{"name": "sandbox"}],
                                "users": [{"username": "hank", "password": "propane"}],
                            }
                        },
                    }
                ],
            }
        ]
    }
    creds, _ = recover_credentials("postgresql", doc, vms_for("postgres"), A)
    assert creds["username"] == "hank" and creds["db_name"] == "sandbox"


def test_rabbitmq_forge_shape_vhost_is_instance_id():
    creds, _ = recover_credentials("rabbitmq", rabbitmq_manifest("d", A), vms_for("rabbitmq", "10.9.9.9"), A)
    assert set(creds) >= {
        "admin_username",
        "admin_password",
        "username",
        "password",
        "vhost",
        "host",
        "hostname",
        "port",
        "uri",
        "protocols",
        "dashboard_url",
        "api_url",
    }
    assert creds["vhost"] == A and creds["port"] == 5672 and creds["hostname"] == "10.9.9.9"
    assert creds["protocols"]["management"]["port"] == 15672
    assert creds["uri"] == f"amqp://app:rmq-pass@10.9.9.9:5672/{A}"


def test_dns_used_when_no_ip():
    vms = [VM(instance_group="rabbitmq", index=0, dns=["q-s0.rabbitmq.net.dep.bosh"])]
    creds, _ = recover_credentials("rabbitmq", rabbitmq_manifest("d", A), vms, A)
    assert creds["host"] == "q-s0.rabbitmq.net.dep.bosh"


def test_unresolved_placeholder_is_not_guessed_and_reason_names_no_secret():
    for pw in ["((redis-password))", '(( vault $CREDENTIALS "/redis/system:password" ))']:
        creds, reason = recover_credentials("redis", redis_manifest("d", A, password=pw), vms_for("standalone"), A)
        assert creds is None and "unresolved" in reason


def test_missing_values_and_vms():
    creds, reason = recover_credentials("redis", redis_manifest("d", A, password=None), vms_for("standalone"), A)
    assert creds is None and "not found" in reason
    creds, reason = recover_credentials("redis", redis_manifest("d", A), [], A)
    assert creds is None and "no VM" in reason
    creds, reason = recover_credentials("redis", redis_manifest("d", A), [VM(instance_group="standalone")], A)
    assert creds is None and "no IP" in reason
    creds, reason = recover_credentials("mongodb", redis_manifest("d", A), vms_for("standalone"), A)
    assert creds is not None  # unknown service id: the releases say redis
    creds, reason = recover_credentials("kafka", {"releases": [{"name": "kafka"}]}, [], A)
    assert creds is None and "no credential recovery rule" in reason
    creds, reason = recover_credentials("redis", "key: [unclosed", [], A)
    assert creds is None and "YAML" in reason


def test_secret_never_in_reason():
    text = yaml.safe_dump({"meta": {"password": "TOPSECRET"}, "instance_groups": [{"name": "g", "jobs": []}]})
    _, reason = recover_credentials("redis", text, [], A)
    assert "TOPSECRET" not in reason


def test_service_kind():
    assert service_kind("redis") == "redis"
    assert service_kind("postgresql-ha") == "postgresql"
    assert service_kind("rabbitmq") == "rabbitmq"
    assert service_kind("unknown", ["postgres"]) == "postgresql"
    assert service_kind("unknown", ["postgres", "redis"]) is None
    assert service_kind(None, ["cf-rabbitmq"]) == "rabbitmq"
