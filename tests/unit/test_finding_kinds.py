"""Finding kinds are data: one enum, each kind with its spec and rule, looped over everywhere."""

import re
from pathlib import Path

from reconciler.domain import FindingKind, empty_findings
from reconciler.domain.findings import SPECS
from reconciler.domain.orphans import RULES
from reconciler.observability import RUN_METRICS

ROOT = Path(__file__).resolve().parents[2]
# the two places that define kinds; everything else loops over FindingKind
DEFINERS = {"shared/reconciler/domain/findings.py", "shared/reconciler/domain/orphans.py"}


def test_every_kind_has_a_spec_a_rule_and_a_metric():
    assert set(SPECS) == set(RULES) == set(FindingKind)
    metrics = [kind.spec.metric for kind in FindingKind]
    assert len(set(metrics)) == len(metrics)
    for kind in FindingKind:
        assert RUN_METRICS[kind.spec.metric] == ("Count", kind.figure)
        assert kind.label and kind.description and kind.spec.summary and kind.spec.needs
    assert empty_findings() == {kind.value: {} for kind in FindingKind}


def test_no_module_spells_out_the_kinds():
    # a hand-written list of kinds (e.g. ("cf", "bosh", "vault")) is where a new kind gets lost
    spelled = re.compile(r"""\(\s*["']cf["'],\s*["']bosh["'],\s*["']vault["']\s*\)""")
    found = []
    # (mockstack's world files have cf/bosh/vault *sections*, not kinds: only its report is checked)
    for path in [*(ROOT / "shared/reconciler").rglob("*.py"), ROOT / "mockstack/demo.py"]:
        rel = path.relative_to(ROOT).as_posix()
        if rel not in DEFINERS and spelled.search(path.read_text()):
            found.append(rel)
    assert found == []
