"""``python -m mockstack COMMAND`` (serve, generate, validate, ...): see :mod:`mockstack.cli`."""

import sys

from mockstack.cli import main

if __name__ == "__main__":
    sys.exit(main())
