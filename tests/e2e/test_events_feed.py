"""Incremental change detection on the real state machine: a cached detail past ``cache_ttl``
is revalidated by BOSH's events feed (one request for the whole estate) and read again only
when its deployment has an event since it was cached, or when the feed cannot be read."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from mockstack.base import Response
from tests.e2e.support import scenario, small_world

pytestmark = pytest.mark.slow

# cache_ttl 1s: a second run a few seconds later finds every detail past its TTL
CONFIG = """\
reconciler:
  cache_ttl: 1s
  batch: {delay: 0s}
  concurrency: {cooldown_period: 0s, max_deployments_per_run: 0}
"""


def bosh_requests(run):
    return sum((run["requests"].get("bosh") or {}).values())


def scan(run):
    return run["output"]["phases"]["scan"]


def test_stale_details_are_revalidated_by_the_feed_and_changed_ones_read_again():
    world, expected = small_world(20, seed=5)
    with scenario(world, config_text=CONFIG) as sc:
        cold = sc.run_once()
        assert cold["status"] == "SUCCEEDED", cold["cause"]
        scanned = scan(cold).get("cache_misses", 0)
        assert scanned > 10 and scan(cold).get("revalidated", 0) == 0
        time.sleep(1.5)  # past cache_ttl (not a timing assertion: the run only needs stale details)

        warm = sc.run_once()
        assert warm["status"] == "SUCCEEDED", warm["cause"]
        assert scan(warm).get("revalidated", 0) == scanned and scan(warm).get("cache_misses", 0) == 0
        # /deployments and one page of /events: nothing per deployment (/info and the login are per Lambda)
        assert bosh_requests(warm) <= 5, warm["requests"]
        assert warm["output"]["phases"]["discover_bosh"]["feed_requests"] == 1

        changed = sorted(expected["matched"].values())[0]
        sc.stack.bosh.change_deployment(changed, when=time.time() + 5)  # a deploy after it was cached
        time.sleep(1.5)
        after_change = sc.run_once()
        assert after_change["status"] == "SUCCEEDED", after_change["cause"]
        assert scan(after_change).get("cache_misses", 0) == 1  # only the changed deployment is read again
        assert scan(after_change).get("revalidated", 0) == scanned - 1
        assert bosh_requests(after_change) <= 5 + 2  # the feed, and manifest + instances of the changed one

        time.sleep(1.5)
        with feed_failing(sc.stack.bosh):
            no_feed = sc.run_once()  # the feed answers 500: every stale detail is read again
        assert no_feed["status"] == "SUCCEEDED", no_feed["cause"]
        assert scan(no_feed).get("cache_misses", 0) == scanned and scan(no_feed).get("revalidated", 0) == 0

        time.sleep(1.5)
        forced = sc.run_once(force=True)  # the cache is cleared: everything is read, no feed request
        assert scan(forced).get("cache_misses", 0) == scanned
        assert "feed_requests" not in forced["output"]["phases"]["discover_bosh"]


@contextmanager
def feed_failing(bosh):
    """The Director answers ``GET /events`` with a 500 (its database is down, say)."""
    original = bosh.handle

    def handle(request):
        if request.path.startswith("/events"):
            return Response(500, b'{"code":100,"description":"database unavailable"}', {})
        return original(request)

    bosh.handle = handle
    try:
        yield
    finally:
        del bosh.handle
