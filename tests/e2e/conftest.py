"""Fixtures for the whole state machine on the embedded engine (the real template.yaml)."""

import pytest

from mockstack.aws import AwsEngine

# small Retry intervals/attempts: the interpreter sleeps in real time
FAST = {"StateRetryIntervalSeconds": "1", "StateRetryMaxAttempts": "1", "PhaseTimeoutSeconds": "120"}


@pytest.fixture
def engine():
    with AwsEngine(parameters=FAST) as eng:
        yield eng


@pytest.fixture
def put_config(engine):
    """Write blacksmith.conf to the SSM parameter the functions read."""

    def put(text: str) -> None:
        engine.client("ssm").put_parameter(Name="/blacksmith/reconciler/config", Value=text,
                                           Type="SecureString", Overwrite=True)

    return put
