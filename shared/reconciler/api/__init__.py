"""The Function URL API: status, Prometheus metrics, forced runs, run records, orphans and
the dashboard page. Pure builders (status, metrics text, dashboard HTML, request parsing)
live beside the resolver so they are testable without AWS."""
