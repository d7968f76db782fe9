"""Legacy backups of instances a run leaves unchanged: kept by ordinary runs (never deleted),
migrated by a forced run (read back and compared before the legacy copy goes)."""

from __future__ import annotations

import pytest

from tests.e2e.support import scenario, small_world

pytestmark = pytest.mark.slow


def test_forced_run_migrates_legacy_backups_of_unchanged_instances():
    world, expected = small_world(12, seed=5, legacy_backups=0.25)
    legacy = {p for p in world["vault"] if p.split("/")[2:3] == ["backups"] and p.count("/") == 3}
    owners = {p.split("/")[1] for p in legacy}
    assert owners and owners <= set(expected["matched"])
    with scenario(world) as sc:
        first = sc.run_once()
        after_first = sc.vault_contents()
        forced = sc.run_once(force=True)
        after_forced = sc.vault_contents()

    assert first["status"] == forced["status"] == "SUCCEEDED", (first["cause"], forced["cause"])
    untouched = {o for o in owners if not any(p.startswith(f"secret/{o}/") and p not in legacy
                                              and after_first.get(p) != world["vault"].get(p) for p in after_first)}
    assert untouched, "some legacy owners must be instances the first run did not write"
    for path in legacy:
        if path.split("/")[1] in untouched:
            assert path in after_first  # an ordinary run leaves them where they are
    assert not legacy & set(after_forced)  # the forced run moved every one of them
    for owner in owners:
        assert any(p.startswith(f"secret/backups/{owner}/") for p in after_forced)
    assert forced["output"]["phases"]["apply"].get("legacy_migrated", 0) >= 1
