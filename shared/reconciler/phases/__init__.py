"""Phase logic of the reconcile state machine: one module per state, each with ``run(event, context)``.

Handlers (``functions/<phase>/app.py``) only decorate and delegate here. A phase reads its
settings and clients through :mod:`reconciler.phases.runtime`, bulk data from the run's
scratch items in DynamoDB (store/scratch.py), calls the adapters and the pure domain logic, and
returns a small JSON summary for the state machine (references and counts, never bulk data).
"""
