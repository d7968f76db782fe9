"""The operator's command line, ``blacksmith-reconciler`` (also ``python -m reconciler``)."""

from .main import main

__all__ = ["main"]
