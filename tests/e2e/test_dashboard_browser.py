"""The dashboard as a person sees it: headless Chromium (Debian's package, no browser
download) driven by Playwright opens ``/b/`` through the Function URL front door."""

import os
import shutil

import pytest

from tests.api_support import api  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def test_dashboard_shows_status_runs_orphans_and_api_health(api, browser, tmp_path):  # noqa: F811
    url, store, _, _ = api
    guid = "0d7f6c1e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"
    for i, (status, duration) in enumerate([("SUCCEEDED", 41.0), ("FAILED", 12.0), ("SUCCEEDED", 38.5)]):
        store.put_run({"run_id": f"run-{i}", "status": status, "started_at": f"2026-11-26T0{i}:00:00Z",
                       "finished_at": f"2026-11-26T0{i}:01:00Z", "duration_s": duration,
                       "figures": {"instances_found": 40 + i, "instances_synced": 39}})
    mismatch, creating = "5387d29c-fc2b-432c-9b34-73342063e843", "75750c2b-561f-4bfe-9f93-693f6f00e7c4"
    store.put_orphans({"cf": {guid: {"first_seen": "2026-11-26T00:00:00Z", "checks": 3}},
                       "bosh": {"redis-standalone-orphan": {"checks": 1}}, "vault": {},
                       "name_mismatch": {mismatch: {"checks": 2, "reason": (
                           f"deployment redis-small-{mismatch.upper()}, broker derives redis-small-{mismatch}")}},
                       "in_flight": {creating: {"checks": 1, "reason": "CF create in progress"}}})
    store.guard_update("cf:prod", UpdateExpression="SET cb = :s", ExpressionAttributeValues={":s": {"S": "open"}})

    page = browser.new_page()
    page.goto(f"{url}/b/")
    assert page.title() == "Blacksmith Reconciler"
    assert page.locator("#state").inner_text() == "Idle"
    assert page.locator("#instances-found").inner_text() == "42"
    assert page.locator("#duration-chart rect").count() == 3
    orphans = page.locator("#orphans").inner_text()
    assert "CF 1, BOSH 1, Vault 0" in orphans and guid in orphans and "redis-standalone-orphan" in orphans
    assert "Name mismatch 1" in orphans and "In flight 1" in orphans and "CF create in progress" in orphans
    assert f"redis-small-{mismatch.upper()}" in orphans and f"broker derives redis-small-{mismatch}" in orphans
    assert "open" in page.locator("#apis").inner_text()
    runs = page.locator("#runs").inner_text()
    assert "run-1" in runs and "FAILED" in runs
    box = page.locator("#duration-chart").bounding_box()
    assert box and box["width"] > 100  # the chart is drawn, not collapsed
    # DASHBOARD_SCREENSHOT=/path.png keeps a picture of what the test saw
    page.screenshot(path=os.environ.get("DASHBOARD_SCREENSHOT") or str(tmp_path / "dashboard.png"), full_page=True)
