"""The run lock: one item (``lock`` / ``run``) with a lease, so one run at a time."""

from __future__ import annotations

import logging
import math

from botocore.exceptions import ClientError

from reconciler.errors import InvalidInput, RunLocked

from .table import Tables, iso_time, item_key, item_to_dict, to_dynamo

log = logging.getLogger("reconciler.store")


class RunLock(Tables):
    """Acquire, renew and release the reconcile lock (re-entrant for the same run)."""

    def acquire_lock(self, run_id: str, execution_arn: str, lease_s: float) -> dict:
        """Take the reconcile lock for ``lease_s`` seconds. Free, expired or already ours:
        taken (re-entrant for the same run). Held by another run: ``RunLocked(holder=arn)``."""
        if lease_s <= 0:
            raise InvalidInput(f"lock lease {lease_s!r}: a positive number of seconds is accepted")
        now = self.clock()
        item = {"pk": "lock", "sk": "run", "run_id": run_id, "execution_arn": execution_arn,
                "acquired_at": iso_time(now), "expires_at": int(math.ceil(now + lease_s))}
        try:
            self._call("put_item", TableName=self.state_table, Item=to_dynamo(item)["M"],
                       ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now OR run_id = :rid",
                       ExpressionAttributeValues={":now": {"N": str(int(now))}, ":rid": {"S": run_id}},
                       ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            old = item_to_dict(exc.response.get("Item")) or self._get(self.state_table, "lock", "run") or {}
            holder = old.get("execution_arn", "")
            until = iso_time(float(old["expires_at"])) if old.get("expires_at") else "?"
            raise RunLocked(f"reconcile lock held by run {old.get('run_id', '?')} ({holder}) until {until}",
                            holder=holder) from None
        return {k: v for k, v in item.items() if k not in ("pk", "sk")}

    def renew_lock(self, run_id: str, lease_s: float) -> None:
        """Extend our lease (long runs); ``RunLocked`` if the lock is no longer ours."""
        try:
            self._call("update_item", TableName=self.state_table, Key=item_key("lock", "run"),
                       UpdateExpression="SET expires_at = :exp", ConditionExpression="run_id = :rid",
                       ExpressionAttributeValues={":exp": {"N": str(int(math.ceil(self.clock() + lease_s)))},
                                                  ":rid": {"S": run_id}})
        except ClientError:
            current = self.current_lock() or {}
            raise RunLocked(f"run {run_id} lost the reconcile lock", holder=current.get("execution_arn", "")) \
                from None

    def release_lock(self, run_id: str) -> bool:
        """Release the lock if ``run_id`` holds it; ``False`` when it did not (nothing changed)."""
        try:
            self._call("delete_item", TableName=self.state_table, Key=item_key("lock", "run"),
                       ConditionExpression="run_id = :rid", ExpressionAttributeValues={":rid": {"S": run_id}})
        except ClientError:
            log.warning("release_lock: run %s does not hold the lock", run_id)
            return False
        return True

    def claim_start(self, name: str, hold_s: float) -> dict | None:
        """Claim the right to start an execution for ``hold_s`` seconds (the API's POST: between
        its "is one running?" check and StartExecution, another request must not start one too).
        ``None`` when claimed; the current claim (``name``, ``expires_at``) when another holds it."""
        now = self.clock()
        item = {"pk": "lock", "sk": "start", "name": name, "expires_at": int(math.ceil(now + hold_s))}
        try:
            self._call("put_item", TableName=self.state_table, Item=to_dynamo(item)["M"],
                       ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                       ExpressionAttributeValues={":now": {"N": str(int(now))}},
                       ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            old = item_to_dict(exc.response.get("Item")) or self._get(self.state_table, "lock", "start") or {}
            return {"name": old.get("name", "?"), "expires_at": old.get("expires_at")}
        return None

    def release_start(self, name: str) -> None:
        """Give a start claim back (the execution started, or could not be), if it is still ``name``'s."""
        try:
            self._call("delete_item", TableName=self.state_table, Key=item_key("lock", "start"),
                       ConditionExpression="#n = :name", ExpressionAttributeNames={"#n": "name"},
                       ExpressionAttributeValues={":name": {"S": name}})
        except ClientError:
            log.warning("release_start: the start claim is no longer %s's", name)

    def current_lock(self) -> dict | None:
        item = self._get(self.state_table, "lock", "run")
        return None if item is None else {k: v for k, v in item.items() if k not in ("pk", "sk")}
