"""Shares of the evidence: with several foundations and directors, one of them down degrades
only the findings and instances whose evidence it holds.

``source_status`` (what SyncIndex hands to the orphan rules) has ``cf``/``bosh`` when every
foundation/director of a source answered, or failed as a whole; with only some of them down it
holds one part per member instead (``cf:<foundation>``, ``bosh:<director>``). A director
serves the foundations configured for it (``bosh[].foundations``; absent: all).

A finding of foundation F is judged when F answered and every director serving F answered (its
deployment could be on any of them); a finding of director D (a deployment) when D answered and
every foundation D serves answered (its instance could be in any of them). A finding with neither
(a Vault entry whose index entry names no foundation) is not judged while anything is down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .planning import PlanItem
from .types import DomainConfig, MatchResult

SPLIT_SOURCES = ("cf", "bosh")


def parts(status: Mapping[str, object], source: str) -> dict[str, bool]:
    """``{member: answered}`` of a source reported per member (empty when it is not split)."""
    prefix = source + ":"
    return {k[len(prefix):]: str(v) == "ok" for k, v in status.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class Share:
    """Which foundations and directors answered, and who serves whom."""

    foundations: Mapping[str, bool]  # empty: CF answered as a whole
    directors: Mapping[str, bool]  # empty: BOSH answered as a whole
    serves: Mapping[str, Sequence[str]]  # director -> its foundations (absent or empty: all)

    @property
    def down_foundations(self) -> list[str]:
        return sorted(f for f, ok in self.foundations.items() if not ok)

    @property
    def down_directors(self) -> list[str]:
        return sorted(d for d, ok in self.directors.items() if not ok)

    def _serves(self, director: str, foundation: str) -> bool:
        allowed = self.serves.get(director)
        return not allowed or foundation in allowed

    def foundation_complete(self, foundation: str) -> bool:
        """The foundation answered and so did every director whose deployments may be its instances'."""
        if self.foundations and not self.foundations.get(foundation, False):
            return False
        return all(ok for d, ok in self.directors.items() if self._serves(d, foundation))

    def director_complete(self, director: str) -> bool:
        """The director answered and so did every foundation whose instances its deployments may be."""
        if self.directors and not self.directors.get(director, False):
            return False
        served = self.serves.get(director) or list(self.foundations)
        return all(self.foundations.get(f, True) for f in served)

    def judged(self, foundation: str | None, director: str | None) -> bool:
        """Is a finding of (foundation, director) judged on complete evidence?"""
        if foundation is None and director is None:
            return not (self.down_foundations or self.down_directors)
        return (foundation is None or self.foundation_complete(foundation)) and (
            director is None or self.director_complete(director))

    def why(self) -> str:
        down = [f"foundation(s) {', '.join(self.down_foundations)}"] if self.down_foundations else []
        down += [f"director(s) {', '.join(self.down_directors)}"] if self.down_directors else []
        return " and ".join(down) + " did not answer"


def share_of(status: Mapping[str, object], serves: Mapping[str, Sequence[str]] | None = None) -> Share | None:
    """The share when some foundations or directors are down and the rest of each split source
    answered; None when nothing is split (all or nothing, judged as before) or when a whole
    source is down (nothing that needs it can be judged)."""
    split = {s: parts(status, s) for s in SPLIT_SOURCES}
    if not any(split.values()):
        return None
    for source, members in split.items():
        if members and not any(members.values()):
            return None
        if not members and source in status and str(status[source]) != "ok":
            return None
    return Share(foundations=split["cf"], directors=split["bosh"], serves=dict(serves or {}))


def hold_back(items: Sequence[PlanItem], down_directors: Sequence[str], cfg: DomainConfig,
              result: MatchResult | None = None) -> list[PlanItem]:
    """Items of a run with some directors down: a CF instance left without a deployment whose
    foundation a down director serves may have its deployment there, so it is not written this
    run (its Vault data stays as it is, like a foundation that did not answer). The same holds
    when its guid is also an instance of another foundation a down director serves (a twin):
    which of the two Vault's record belongs to is unknown this run."""
    if not down_directors:
        return list(items)
    homes: dict[str, set[str]] = {}
    for twin in (result.twin_instances if result is not None else []):
        foundation, uid = twin.split(":", 1)
        homes.setdefault(uid, set()).add(foundation)
    out = []
    for item in items:
        if not item.skip_reason and item.match is None and item.cf is not None:
            foundations = {item.cf.foundation, *homes.get(item.instance_id, ())}
            down = [d for d in down_directors if any(cfg.serves(d, f) for f in foundations)]
            if down:
                item = item.model_copy(update={"skip_reason": f"BOSH director(s) {', '.join(down)} did not answer: "
                                                              "its deployment is unknown this run"})
        out.append(item)
    return out
