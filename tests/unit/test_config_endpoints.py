"""CF foundations, BOSH directors, Vault: file layout, env overrides, TLS, warnings."""

import logging
from pathlib import Path

import pytest

from reconciler.config import config_warnings, load_settings, log_config_warnings
from reconciler.errors import ConfigError
from reconciler.secrets import Secret

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

FULL = f"""
cf:
  - name: prod
    api_url: https://api.sys.prod.example.com/
    client_id: blacksmith-reconciler
    client_secret: prod-cf-secret
    broker_name: blacksmith
    ca_cert: |
{"".join("      " + line + chr(10) for line in PEM.splitlines())}
  - name: dev
    api_url: https://api.sys.dev.example.com
    client_id: reconciler
    client_secret: ssm:/blacksmith/dev/cf_secret
    broker_guid: 0d6e6a0e-5a62-4f0a-9b1c-000000000001
bosh:
  - name: bosh-prod
    url: https://10.0.0.6:25555
    client_id: blacksmith
    client_secret: secretsmanager:blacksmith/bosh#client_secret
  - name: bosh-lab
    url: https://10.1.0.6:25555
    auth: basic
    username: admin
    password: lab-password
    insecure_skip_verify: true
vault:
  address: https://vault.example.com:8200
  auth: aws
  aws_role: blacksmith-reconciler
  mount: secret
"""


def test_full_layout():
    s = load_settings(env={}, file_text=FULL)
    prod, dev = s.cf_foundations
    assert prod.name == "prod" and prod.api_url == "https://api.sys.prod.example.com"  # trailing / dropped
    assert prod.client_secret.get() == "prod-cf-secret" and prod.broker_name == "blacksmith"
    assert prod.broker_guid is None
    assert dev.broker_guid == "0d6e6a0e-5a62-4f0a-9b1c-000000000001" and dev.broker_name is None
    assert dev.client_secret.is_reference and dev.client_secret.kind == "ssm"
    assert dev.client_secret.name == "/blacksmith/dev/cf_secret"
    bosh_prod, lab = s.bosh_directors
    assert bosh_prod.auth == "uaa" and bosh_prod.client_secret.kind == "secretsmanager"
    assert bosh_prod.client_secret.name == "blacksmith/bosh" and bosh_prod.client_secret.field == "client_secret"
    assert lab.auth == "basic" and lab.password.get() == "lab-password" and lab.tls_verify() is False
    assert s.vault.auth == "aws" and s.vault.aws_role == "blacksmith-reconciler" and s.vault.token is None
    assert s.foundation("dev") is dev and s.director("bosh-lab") is lab
    with pytest.raises(ConfigError, match="no CF foundation named 'nope'"):
        s.foundation("nope")
    s.require_endpoints()


def test_single_mapping_means_one_entry_and_names_default():
    text = """
cf:
  api_url: https://api.example.com
  client_id: c
  client_secret: s
bosh:
  url: https://bosh:25555
  client_id: c
  client_secret: s
"""
    s = load_settings(env={}, file_text=text)
    assert [f.name for f in s.cf_foundations] == ["cf"] and s.cf_foundations[0].broker_name == "blacksmith"
    assert [d.name for d in s.bosh_directors] == ["bosh"]


def test_errors_in_single_mapping_point_at_the_file_line():
    text = "cf:\n  api_url: https://api.example.com\n  client_id: c\n  client_secret: s\n  broker: x\n"
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, file_text=text)
    msg = str(err.value)
    assert "cf[0].broker" in msg and "blacksmith.conf line 5" in msg and "did you mean 'broker_name'" in msg


def test_env_only_single_endpoint_setup():
    env = {
        "BLACKSMITH_CF_API_URL": "https://api.example.com",
        "BLACKSMITH_CF_CLIENT_ID": "rec",
        "BLACKSMITH_CF_CLIENT_SECRET": "cf-pass",
        "BLACKSMITH_CF_BROKER_NAME": "blacksmith-prod",
        "BLACKSMITH_BOSH_URL": "https://10.0.0.6:25555",
        "BLACKSMITH_BOSH_AUTH": "basic",
        "BLACKSMITH_BOSH_USERNAME": "admin",
        "BLACKSMITH_BOSH_PASSWORD": "ssm:/bosh/admin",
        "VAULT_ADDR": "https://vault:8200",
        "VAULT_TOKEN": "s.tok",
    }
    s = load_settings(env=env)
    assert s.cf_foundations[0].client_secret.get() == "cf-pass"
    assert s.cf_foundations[0].broker_name == "blacksmith-prod"
    assert s.bosh_directors[0].password.kind == "ssm"
    assert s.vault.address == "https://vault:8200" and s.vault.token.get() == "s.tok"
    s.require_endpoints()


def test_blacksmith_vault_names_beat_vault_names_beat_file():
    text = "vault:\n  address: https://file-vault:8200\n  token: file-token\n"
    s = load_settings(env={}, file_text=text)
    assert s.vault.address == "https://file-vault:8200"
    s = load_settings(env={"VAULT_ADDR": "https://env-vault:8200"}, file_text=text)
    assert s.vault.address == "https://env-vault:8200"
    s = load_settings(
        env={"VAULT_ADDR": "https://env-vault:8200", "BLACKSMITH_VAULT_ADDR": "https://bs-vault:8200"}, file_text=text
    )
    assert s.vault.address == "https://bs-vault:8200" and s.vault.token.get() == "file-token"


def test_env_overrides_the_single_file_foundation():
    text = "cf:\n  - name: prod\n    api_url: https://a\n    client_id: c\n    client_secret: file\n"
    s = load_settings(env={"BLACKSMITH_CF_CLIENT_SECRET": "from-env"}, file_text=text)
    assert s.cf_foundations[0].name == "prod" and s.cf_foundations[0].client_secret.get() == "from-env"


def test_single_endpoint_env_with_several_file_entries_is_an_error():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"BLACKSMITH_CF_CLIENT_ID": "x"}, file_text=FULL)
    assert "BLACKSMITH_CF_CLIENT_ID" in str(err.value) and "found 2" in str(err.value)


def test_names_must_be_unique():
    entry = "{url: 'https://%s', client_id: c, client_secret: s}"
    text = f"bosh:\n  - {entry % 'a'}\n  - {entry % 'b'}\n"
    with pytest.raises(ConfigError, match="names must be unique, repeated: bosh"):
        load_settings(env={}, file_text=text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bosh:\n  url: https://b\n", "auth 'uaa' needs client_id and client_secret"),
        ("bosh:\n  url: https://b\n  auth: basic\n  username: u\n", "auth 'basic' needs username and password"),
        ("bosh:\n  url: https://b\n  auth: cert\n", "accepted: uaa or basic"),
        ("vault:\n  address: https://v\n", "auth 'token' needs token"),
        ("vault:\n  address: https://v\n  auth: aws\n", "auth 'aws' needs aws_role"),
        ("vault:\n  address: vault:8200\n  token: t\n", "not an http(s) URL"),
        ("vault:\n  kv_version: 3\n", "accepted: auto, 1 or 2"),
        ("cf:\n  api_url: https://a\n  client_id: c\n", "cf[0].client_secret"),
        ("cf:\n  name: 'bad name'\n  api_url: https://a\n  client_id: c\n  client_secret: s\n", "not a valid name"),
        ("cf:\n  api_url: https://a\n  client_id: c\n  client_secret: 'ssm:'\n", "cf[0].client_secret"),
        ("vault:\n  ca_cert: /no/such/ca.pem\n", "neither PEM text nor the path of an existing file"),
    ],
)
def test_endpoint_errors(text, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, file_text=text)
    assert needle in str(err.value)


def test_tls_verify_variants(tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(PEM)
    base = "vault:\n  address: https://v:8200\n  token: t\n"
    assert load_settings(env={}, file_text=base).vault.tls_verify() is True
    s = load_settings(env={}, file_text=base + f"  ca_cert: {ca_file}\n")
    assert s.vault.tls_verify() == str(ca_file)
    s = load_settings(env={"VAULT_CACERT": str(ca_file)}, file_text=base)
    assert s.vault.tls_verify() == str(ca_file)
    # inline PEM is written to a private temp file once
    s = load_settings(env={}, file_text=FULL)
    path = s.cf_foundations[0].tls_verify()
    assert isinstance(path, str) and Path(path).read_text().strip() == PEM.strip()
    assert s.cf_foundations[0].tls_verify() == path
    assert "PEM (" in repr(s.cf_foundations[0].ca_cert)
    # explicit skip wins and is reported
    s = load_settings(env={"BLACKSMITH_VAULT_INSECURE_SKIP_VERIFY": "true"}, file_text=base)
    assert s.vault.tls_verify() is False and s.vault.skip_ssl_validation is True


def test_insecure_and_plain_http_warnings_are_logged_at_every_call(caplog):
    text = FULL + "  insecure_skip_verify: true\n"
    s = load_settings(env={}, file_text=text)
    warnings = config_warnings(s)
    assert any("BOSH director 'bosh-lab'" in w and "OFF" in w for w in warnings)
    assert any("Vault" in w and "OFF" in w for w in warnings)
    assert not any("CF foundation" in w for w in warnings)
    with caplog.at_level(logging.WARNING, logger="reconciler.config"):
        assert log_config_warnings(s) == warnings
        assert log_config_warnings(s) == warnings
    assert len([r for r in caplog.records if "OFF" in r.getMessage()]) == 4  # two per call, every call

    http = load_settings(env={"VAULT_ADDR": "http://vault.example.com:8200", "VAULT_TOKEN": "t"})
    assert any("plain http" in w for w in config_warnings(http))
    loopback = load_settings(env={"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "t"})
    assert config_warnings(loopback) == []


def test_log_config_warnings_works_with_powertools_logger(capsys):
    from aws_lambda_powertools import Logger

    s = load_settings(env={"VAULT_ADDR": "https://v", "VAULT_TOKEN": "t", "BLACKSMITH_VAULT_INSECURE_SKIP_VERIFY": "1"})
    logger = Logger(service="test-config")
    assert len(log_config_warnings(s, logger)) == 1
    assert "insecure_skip_verify" in capsys.readouterr().out


def test_require_endpoints_lists_everything_missing():
    with pytest.raises(ConfigError) as err:
        load_settings(env={}).require_endpoints()
    msg = str(err.value)
    assert "BLACKSMITH_CF_API_URL" in msg and "BLACKSMITH_BOSH_URL" in msg and "VAULT_ADDR" in msg
    load_settings(env={}).require_endpoints(cf=False, bosh=False, vault=False)


def test_secrets_never_appear_in_repr_dump_or_errors():
    secret_words = ["prod-cf-secret", "lab-password", "env-token-value"]
    s = load_settings(env={"VAULT_TOKEN": "env-token-value", "BLACKSMITH_VAULT_AUTH": "token"}, file_text=FULL)
    text = repr(s) + str(s) + s.model_dump_json() + str(s.model_dump())
    from reconciler.config.reference import effective_config

    text += effective_config(s)
    for word in secret_words:
        assert word not in text
    assert f"{s.cf_foundations[0].client_secret}" == "***"
    assert "ssm:/blacksmith/dev/cf_secret" in repr(s.cf_foundations[1].client_secret)

    # a secret in a bad place: the error must not echo it
    bad = "cf:\n  api_url: https://a\n  client_id: c\n  client_secret: [hunter2]\n  clientsecret: hunter3\n"
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, file_text=bad)
    assert "hunter2" not in str(err.value) and "hunter3" not in str(err.value)
    # BLACKSMITH_VAULT_TOKEN beats the VAULT_TOKEN fallback (no conflict error)
    s = load_settings(env={"VAULT_ADDR": "https://v", "BLACKSMITH_VAULT_TOKEN": "a-tok", "VAULT_TOKEN": "b"})
    assert s.vault.token.get() == "a-tok"


def test_conflicting_secret_env_names_do_not_echo_values():
    with pytest.raises(ConfigError) as err:
        load_settings(
            env={"BLACKSMITH_RECONCILER_BACKUP_RETENTION": "1", "BLACKSMITH_RECONCILER_BACKUP_RETENTION_COUNT": "2"}
        )
    assert "'1'" in str(err.value)  # non-secrets are shown


def test_secret_wrapper_basics():
    plain = Secret("hunter2")
    assert plain.get() == "hunter2" and repr(plain) == "Secret(***)" and str(plain) == "***"
    assert f"{plain!s}" == "***" and "hunter2" not in f"{plain!r}"
    assert Secret("plain:ssm:literal").get() == "ssm:literal"
    assert Secret("hunter2") == Secret("hunter2") and Secret("a") != Secret("b")
    ref = Secret("secretsmanager:name#key")
    assert (ref.kind, ref.name, ref.field) == ("secretsmanager", "name", "key")
    with pytest.raises(ValueError):
        Secret("ssm:")


def test_secret_name_shorthand_uses_the_secrets_prefix():
    """The SAM template passes Secrets Manager names: X_SECRET_NAME=n means X=secretsmanager:<prefix>n."""
    env = {
        "BLACKSMITH_SECRETS_PREFIX": "blacksmith/reconciler/",
        "BLACKSMITH_CF_API_URL": "https://api.example.com",
        "BLACKSMITH_CF_CLIENT_ID": "rec",
        "BLACKSMITH_CF_CLIENT_SECRET_NAME": "cf-client",
        "BLACKSMITH_BOSH_URL": "https://bosh:25555",
        "BLACKSMITH_BOSH_CLIENT_ID": "rec",
        "BLACKSMITH_BOSH_CLIENT_SECRET_NAME": "bosh-client",
        "BLACKSMITH_VAULT_ADDR": "https://vault:8200",
        "BLACKSMITH_VAULT_TOKEN_SECRET_NAME": "vault-token",
        "BLACKSMITH_CF_BROKER_NAME": "",  # empty = unset
    }
    s = load_settings(env=env)
    assert s.cf_foundations[0].client_secret == Secret("secretsmanager:blacksmith/reconciler/cf-client")
    assert s.bosh_directors[0].client_secret.name == "blacksmith/reconciler/bosh-client"
    assert s.vault.token.describe() == "*** (secretsmanager:blacksmith/reconciler/vault-token)"
    with pytest.raises(ConfigError, match="set by both BLACKSMITH_VAULT_TOKEN and BLACKSMITH_VAULT_TOKEN_SECRET_NAME"):
        load_settings(env={**env, "BLACKSMITH_VAULT_TOKEN": "x"})
