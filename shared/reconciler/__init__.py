"""Blacksmith Deployment Reconciler: the Lambda layer package.

Domain logic (pure) and one adapter per external system (CF, BOSH, Vault, DynamoDB).
"""

__version__ = "0.1.0"
