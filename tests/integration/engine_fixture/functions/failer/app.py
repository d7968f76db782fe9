"""Fixture: raises a custom exception whose class name the state machine catches."""


class BatchBroken(Exception):
    pass


def handler(event, context):
    if event.get("fail") == "crash":
        raise RuntimeError("not caught by the state machine")
    if event.get("fail"):
        raise BatchBroken("batch 3 is broken (on purpose)")
    return {"ok": True}
