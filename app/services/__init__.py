"""The gateway's logic, one package per capability; ``api`` and ``cli`` call in, nothing here calls out to them.

- ``proxy``: one model call from route to relay (routing, retries and fallbacks, streaming, sessions).
- ``audit``: recording each call (the request and response rows, group commit).
- ``admin``: providers and run-time settings (stored, changed, seen live by each worker, probed, listed).
- ``history``: reading the audit trail (lists, sessions, stats, rollups, export, retention).
- ``legacy``: importing the original Node gateway's databases.
"""
