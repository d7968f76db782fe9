"""Secret references and the Lambda entry point against moto's SSM and Secrets Manager."""

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from reconciler.config import load_settings, settings_from_environment
from reconciler.errors import ConfigError
from reconciler.secrets import Secret, clear_secret_cache

REGION = "eu-central-1"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clear_secret_cache()
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION), boto3.client("secretsmanager", region_name=REGION)
    clear_secret_cache()


def test_ssm_reference_resolves_lazily_and_is_cached(aws):
    ssm, _ = aws
    ref = Secret("ssm:/blacksmith/cf/secret", origin="blacksmith.conf line 4")
    ssm.put_parameter(Name="/blacksmith/cf/secret", Value="v1", Type="SecureString")
    assert ref.get() == "v1"
    ssm.put_parameter(Name="/blacksmith/cf/secret", Value="v2", Type="SecureString", Overwrite=True)
    assert ref.get() == "v1"  # cached (Powertools max_age)
    assert ref.get(force_fetch=True) == "v2"
    assert "v1" not in repr(ref) and "v2" not in str(ref)


def test_secretsmanager_reference_whole_and_json_key(aws):
    _, sm = aws
    sm.create_secret(Name="blacksmith/bosh", SecretString=json.dumps({"client_secret": "bosh-s3cret", "n": 5}))
    sm.create_secret(Name="blacksmith/vault-token", SecretString="s.token")
    assert Secret("secretsmanager:blacksmith/vault-token").get() == "s.token"
    assert Secret("secretsmanager:blacksmith/bosh#client_secret").get() == "bosh-s3cret"
    assert Secret("secretsmanager:blacksmith/bosh#n").get() == "5"
    with pytest.raises(ConfigError, match="has no key 'missing'"):
        Secret("secretsmanager:blacksmith/bosh#missing").get()
    with pytest.raises(ConfigError, match="not a JSON object"):
        Secret("secretsmanager:blacksmith/vault-token#x").get()


def test_missing_reference_names_reference_and_origin_not_a_value(aws):
    s = load_settings(
        env={"BLACKSMITH_VAULT_ADDR": "https://v:8200", "BLACKSMITH_VAULT_TOKEN": "ssm:/nope/token"},
    )
    with pytest.raises(ConfigError) as err:
        s.vault.token.get()
    msg = str(err.value)
    assert "ssm:/nope/token" in msg and "environment variable BLACKSMITH_VAULT_TOKEN" in msg


def test_file_reference_error_names_the_file_line(aws):
    text = "cf:\n  api_url: https://a\n  client_id: c\n  client_secret: secretsmanager:absent\n"
    s = load_settings(env={}, file_text=text)
    with pytest.raises(ConfigError, match="blacksmith.conf line 4"):
        s.cf_foundations[0].client_secret.get()


def test_ca_cert_from_ssm(aws):
    ssm, _ = aws
    pem = "-----BEGIN CERTIFICATE-----\nMIIBx\n-----END CERTIFICATE-----\n"
    ssm.put_parameter(Name="/blacksmith/bosh/ca", Value=pem, Type="String")
    s = load_settings(
        env={
            "BLACKSMITH_BOSH_URL": "https://10.0.0.6:25555",
            "BLACKSMITH_BOSH_CLIENT_ID": "c",
            "BLACKSMITH_BOSH_CLIENT_SECRET": "s",
            "BLACKSMITH_BOSH_CA_CERT": "ssm:/blacksmith/bosh/ca",
        }
    )
    path = s.bosh_directors[0].tls_verify()
    assert Path(path).read_text() == pem


CONF = "reconciler:\n  interval: 30m\n  backup:\n    enabled: false\n"


def test_settings_from_ssm_parameter_then_env_overrides(aws, monkeypatch):
    ssm, _ = aws
    ssm.put_parameter(Name="/blacksmith/reconciler/config", Value=CONF, Type="String")
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_SSM", "/blacksmith/reconciler/config")
    monkeypatch.setenv("BLACKSMITH_RECONCILER_BATCH_SIZE", "25")
    s = settings_from_environment()
    assert s.reconciler.interval == 1800.0 and s.reconciler.backup.enabled is False
    assert s.reconciler.batch_size == 25
    assert s.source == "ssm:/blacksmith/reconciler/config"
    # no cache here (the handler's Deps is kept per container): a changed parameter is read
    # again once Powertools' parameter cache lets it
    ssm.put_parameter(Name="/blacksmith/reconciler/config", Value="reconciler:\n  interval: 2h\n", Overwrite=True)
    clear_secret_cache()
    assert settings_from_environment().reconciler.interval == 7200.0


def test_settings_from_ssm_errors_name_the_parameter_and_line(aws, monkeypatch):
    ssm, _ = aws
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_SSM", "/absent")
    with pytest.raises(ConfigError, match="cannot read SSM parameter '/absent'"):
        settings_from_environment()
    ssm.put_parameter(Name="/bad", Value="reconciler:\n  batch_size: -1\n", Type="String")
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_SSM", "/bad")
    with pytest.raises(ConfigError, match=r"ssm:/bad line 2"):
        settings_from_environment()


def test_settings_from_file(tmp_path, monkeypatch):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text(CONF)
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_FILE", str(conf))
    s = settings_from_environment()
    assert s.reconciler.interval == 1800.0 and s.source == str(conf)


def test_settings_from_missing_file_and_both_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_FILE", str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError, match="cannot read .*absent.conf.* BLACKSMITH_RECONCILER_CONFIG_FILE"):
        settings_from_environment()
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_SSM", "/x")
    with pytest.raises(ConfigError, match="set only one"):
        settings_from_environment()


def test_settings_from_environment_without_source_uses_defaults(monkeypatch):
    for name in ("BLACKSMITH_RECONCILER_CONFIG_FILE", "BLACKSMITH_RECONCILER_CONFIG_SSM"):
        monkeypatch.delenv(name, raising=False)
    s = settings_from_environment(env={})
    assert s.reconciler.interval == 3600.0 and s.source == "defaults"


def test_settings_from_environment_reads_the_overlay(monkeypatch):
    """The embedded engine runs several functions in one process: each overlay is its function's."""
    from reconciler import env as envmod

    monkeypatch.delenv("BLACKSMITH_RECONCILER_BATCH_SIZE", raising=False)
    with envmod.overlay({"BLACKSMITH_RECONCILER_BATCH_SIZE": "3"}):
        a = settings_from_environment()
    with envmod.overlay({"BLACKSMITH_RECONCILER_BATCH_SIZE": "4"}):
        b = settings_from_environment()
    assert (a.reconciler.batch_size, b.reconciler.batch_size) == (3, 4)


def test_template_config_parameter_alias(aws, monkeypatch):
    ssm, _ = aws
    ssm.put_parameter(Name="/blacksmith/reconciler/config", Value=CONF, Type="SecureString")
    monkeypatch.setenv("BLACKSMITH_CONFIG_PARAMETER", "/blacksmith/reconciler/config")
    assert settings_from_environment().reconciler.interval == 1800.0
    monkeypatch.setenv("BLACKSMITH_RECONCILER_CONFIG_SSM", "/other")
    with pytest.raises(ConfigError, match="name different parameters"):
        settings_from_environment()
