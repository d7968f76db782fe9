"""Per-run scratch values (``scratch#<run_id>`` / key): what one state leaves for a later one."""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError

from reconciler.errors import InvalidInput

from .table import Tables, to_dynamo


class Scratch(Tables):
    """Compressed values with a TTL, keyed by run and name."""

    def put_scratch(self, run_id: str, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise InvalidInput(f"scratch ttl {ttl_s!r}: a positive number of seconds is accepted")
        self._put_blob(self.state_table, f"scratch#{run_id}", key, value, self.clock() + ttl_s)

    def get_scratch(self, run_id: str, key: str, default: Any = None) -> Any:
        head = self._get(self.state_table, f"scratch#{run_id}", key)
        return default if head is None else self._read_blob(self.state_table, head)

    def claim_pause(self, run_id: str, key: str, slots: int, hold_s: float) -> bool:
        """Claim one of ``slots`` pause slots of the run's ``key`` batches for ``hold_s`` seconds
        (``pause#<run_id>`` / ``<key>#<i>``, a conditional write per slot tried); ``False`` when
        every slot is held by a pause not yet over. So at most ``slots`` batches pause at once."""
        if slots < 1 or hold_s <= 0:
            raise InvalidInput(f"pause claim: slots {slots!r} and hold {hold_s!r} must be positive")
        now = self.clock()
        for i in range(slots):
            item = {"pk": f"pause#{run_id}", "sk": f"{key}#{i}", "until": now + hold_s,
                    "expires_at": int(math.ceil(now + hold_s + 3600))}
            try:
                self._call("put_item", TableName=self.state_table, Item=to_dynamo(item)["M"],
                           ConditionExpression="attribute_not_exists(pk) OR #u <= :now",
                           ExpressionAttributeNames={"#u": "until"},
                           ExpressionAttributeValues={":now": to_dynamo(float(now))})
            except ClientError:
                continue  # held by a pause that is not over
            return True
        return False
