"""Per-run scratch values (``scratch#<run_id>`` / key): what one state leaves for a later one."""

from __future__ import annotations

from typing import Any

from reconciler.errors import InvalidInput

from .table import Tables


class Scratch(Tables):
    """Compressed values with a TTL, keyed by run and name."""

    def put_scratch(self, run_id: str, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise InvalidInput(f"scratch ttl {ttl_s!r}: a positive number of seconds is accepted")
        self._put_blob(self.state_table, f"scratch#{run_id}", key, value, self.clock() + ttl_s)

    def get_scratch(self, run_id: str, key: str, default: Any = None) -> Any:
        head = self._get(self.state_table, f"scratch#{run_id}", key)
        return default if head is None else self._read_blob(self.state_table, head)
