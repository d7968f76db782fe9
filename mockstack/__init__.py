"""The offline stack: CF/UAA, BOSH and Vault emulators, world files, the embedded AWS
engine and the scenario runner. Nothing here needs Docker or the internet."""

import sys
from pathlib import Path

# The reconciler's layer package (shared/, /opt/python on Lambda): the runner and the demo
# use it (configuration checks) before the embedded engine would put it on the path.
_SHARED = str(Path(__file__).resolve().parents[1] / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
