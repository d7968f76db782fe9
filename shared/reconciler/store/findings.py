"""The published findings (orphans) of the last run that evaluated them: ``orphans`` / ``state``."""

from __future__ import annotations

from reconciler.domain.findings import FindingKind

from .table import Tables, iso_time


class Findings(Tables):
    """``{kind: {key: entry}}`` for every FindingKind (an empty dict for a kind never found)."""

    def put_orphans(self, state: dict) -> None:
        self._put_blob(self.state_table, "orphans", "state", state, None, {"updated_at": iso_time(self.clock())})

    def get_orphans(self) -> dict:
        head = self._get(self.state_table, "orphans", "state")
        state = {} if head is None else self._read_blob(self.state_table, head)
        for kind in FindingKind:
            state.setdefault(kind.value, {})
        return state
