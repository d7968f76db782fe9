"""``python -m reconciler``: the operator's command line (``blacksmith-reconciler``)."""

import sys

from reconciler.cli import main

sys.exit(main())
