"""Dashboard v2 in headless Chromium at 390, 1024, 1400 and 1920 px: no column clipped or
overflowing its card, live progress, per-phase run history readable with 1 run and with 200,
findings filtered by kind and text with their age, a run's plan, run-now/dry-run buttons.
A screenshot per width is kept (``DASHBOARD_ARTIFACTS`` folder, default ``out/test-artifacts``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.api.dashboard import CHART_RUNS
from reconciler.progress import PHASES
from tests.api_support import api  # noqa: F401  (fixture)
from tests.e2e.test_dashboard_browser import browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DASHBOARD_ARTIFACTS") or ROOT / "out" / "test-artifacts")
WIDTHS = (390, 1024, 1400, 1920)
IID = "0d7f6c1e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"

# every table cell and the page itself inside its card (a chart may scroll sideways in its own box)
OVERFLOW = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push('page ' +
      document.documentElement.scrollWidth);
  document.querySelectorAll('section').forEach(s => {
    const right = s.getBoundingClientRect().right + 1;
    s.querySelectorAll('th, td').forEach(c => {
      const r = c.getBoundingClientRect();
      if (r.width > 0 && (r.right > right || r.width < 8)) out.push(s.id + ': ' + c.textContent.slice(0, 40));
    });
  });
  return out;
}"""


def seed(store, runs: int) -> str:
    for i in range(runs):
        phases = [{"phase": p, "started_at": None, "duration_s": 1.0 + (i + j) % 5} for j, p in enumerate(PHASES)]
        store.put_run({"run_id": f"run-{i:03d}", "status": "succeeded" if i % 7 else "failed",
                       "started_at": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
                       "finished_at": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:05:00Z",
                       "duration_s": sum(p["duration_s"] for p in phases), "phase_durations": phases,
                       "dry_run": i == runs - 1, "figures": {"instances_found": 40, "instances_synced": 39}})
    last = f"run-{runs - 1:03d}"
    store.put_scratch(last, "plan", {"schema": 1, "run_id": last, "dry_run": True, "summary": {
        "instances": 1, "actions": {"create": 1, "update": 1}, "index": None}, "index": None, "notes": [],
        "instances": [{"instance_id": IID, "actions": [
            {"action": "create", "path": f"secret/{IID}/credentials", "secret": True,
             "fields": [{"field": "password", "change": "added"}]},
            {"action": "update", "path": f"secret/{IID}/metadata", "secret": False, "unchanged_fields": 2,
             "fields": [{"field": "deployment_name", "change": "changed", "before": "redis-old",
                         "after": f"redis-{IID}"}]}]}]}, 3600)
    long_reason = "deployment " + "redis-standalone-" * 6 + IID.upper() + " matched by name only"
    store.put_orphans({"cf": {IID: {"first_seen": "2026-11-20T00:00:00Z", "checks": 3}},
                       "bosh": {"redis-standalone-" + "x" * 60: {"checks": 1, "first_seen": "2026-11-25T00:00:00Z"}},
                       "vault": {}, "name_mismatch": {"5387d29c-fc2b-432c-9b34-73342063e843": {
                           "checks": 2, "reason": long_reason, "first_seen": "2026-11-26T00:00:00Z"}}})
    return last


@pytest.mark.parametrize("runs", [1, 200])
def test_dashboard_at_every_width(api, browser, runs):  # noqa: F811
    url, store, _, _ = api
    last = seed(store, runs)
    store.acquire_lock("live-run", "arn:aws:states:us-east-1:123456789012:execution:reconcile:live-run", 600)
    store.put_run({"run_id": "live-run", "status": "running", "started_at": "2026-12-01T00:00:00Z"})
    from reconciler import progress

    progress.phase_started(store, "live-run", "UpdateVault")
    progress.map_total(store, "live-run", "apply", 4, 40)
    progress.batch_progress(store, "live-run", "apply", 10, True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(f"{url}/b/?run={last}")
        assert page.evaluate(OVERFLOW) == [], width
        assert page.locator("#state").inner_text() == "Running"
        assert page.locator("#phase").inner_text() == "UpdateVault"
        assert "batches 1/4" in page.locator("#status").inner_text()
        bars = page.locator("#duration-chart rect")
        # one segment per phase per finished run; the running one holds one of the 200 places listed
        assert bars.count() == len(PHASES) * min(runs, CHART_RUNS - 1)
        box = bars.first.bounding_box()
        assert box and box["width"] >= 3  # readable at 200 runs (the chart scrolls), not a hairline
        assert page.locator("#plan").inner_text().count(f"secret/{IID}") == 2  # the selected run's plan
        assert "values hidden" in page.locator("#plan").inner_text()
        assert page.locator("#run-now").is_visible() and page.locator("#dry-run").is_visible()
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}-{runs}runs.png"), full_page=True)
        page.close()


def test_findings_filter_by_kind_and_text_and_show_their_age(api, browser):  # noqa: F811
    url, store, _, _ = api
    seed(store, 3)
    page = browser.new_page(viewport={"width": 1024, "height": 900})
    page.goto(f"{url}/b/")
    assert page.locator("#shown").inner_text() == "3"
    page.select_option("#kind-filter", "bosh")
    assert page.locator("#shown").inner_text() == "1"
    page.select_option("#kind-filter", "")
    page.fill("#text-filter", IID[:8])
    assert page.locator("#shown").inner_text() == "2"  # its CF finding, and the mismatch naming it in its detail
    page.fill("#text-filter", "2026-11-20")
    assert page.locator("#shown").inner_text() == "1"
    row = page.locator("#findings-table tr[data-kind=cf]").inner_text()
    assert "d" in row.split("2026-11-20T00:00:00Z")[1]  # first seen days ago: "Nd Mh"
    page.goto(f"{url}/b/?q=redis-standalone-xxxx")  # an id's link: the findings filtered to it
    assert page.locator("#shown").inner_text() == "1"
    page.goto(f"{url}/b/")
    page.click("#dry-run")  # POSTs /b/reconcile with the page's own credentials
    page.wait_for_function("document.getElementById('action-result').textContent.startsWith('started')")
    assert "started dryrun-" in page.locator("#action-result").inner_text()
