"""docs/configuration.md lists every key and env name; the sample files load."""

from pathlib import Path

from reconciler.config import all_env_keys, config_warnings, load_settings
from reconciler.config.reference import BEGIN, END, embed

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


def test_generated_table_in_the_doc_is_current():
    text = DOC.read_text()
    assert BEGIN in text and END in text
    assert embed(text) == text, "run: python -m reconciler.config reference --write docs/configuration.md"


def test_doc_lists_every_key_and_every_env_name():
    text = DOC.read_text()
    for key in all_env_keys():
        assert f"`{key.key}`" in text, key.key
        for name in (*key.names, *key.fallbacks, *key.secret_names):
            assert f"`{name}`" in text, name
    assert "BLACKSMITH_DEBUG" in text and "BLACKSMITH_RECONCILER_CONFIG_SSM" in text
    assert "BLACKSMITH_RECONCILER_CONFIG_FILE" in text


def test_sample_file_loads_and_states_the_defaults():
    s = load_settings(env={}, file_text=(ROOT / "config" / "blacksmith.conf.example").read_text())
    assert s.reconciler == load_settings(env={}).reconciler  # the sample's reconciler block = the defaults
    assert [f.name for f in s.cf_foundations] == ["prod"] and s.bosh_directors[0].auth == "uaa"
    assert s.vault.auth == "aws" and all(c.is_reference for c in (s.vault.ca_cert, s.bosh_directors[0].ca_cert))
    assert config_warnings(s) == []


def test_local_conf_loads():
    s = load_settings(env={}, file_text=(ROOT / "config" / "local.conf").read_text())
    assert s.debug and s.reconciler.retry.initial_delay == 0.1
