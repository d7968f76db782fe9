"""Fixture: a Map worker that records how many of its invocations overlap.

With conc >= 2 two invocations meet at a barrier, which proves the Map really runs them at
the same time (a bounded wait, not a timing assertion)."""

import threading

from reconciler import env

_lock = threading.Lock()
_running = 0
max_running = 0
_barrier = None


def handler(event, context):
    global _running, max_running, _barrier
    with _lock:
        _running += 1
        max_running = max(max_running, _running)
        if _barrier is None:
            _barrier = threading.Barrier(2)
    try:
        if event.get("conc", 1) >= 2:
            _barrier.wait(timeout=20)
        return {"item": event["item"], "who": env.get("WHO"), "max_running": max_running}
    finally:
        with _lock:
            _running -= 1
