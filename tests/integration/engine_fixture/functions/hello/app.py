"""Fixture: reports the environment it sees through reconciler.env and the Lambda context."""

import os

from reconciler import env


def handler(event, context):
    return {"who": env.get("WHO"), "shared": env.get("SHARED"), "table": env.get("TABLE"),
            "in_os_environ": "WHO" in os.environ, "function": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis(), "event": event}
