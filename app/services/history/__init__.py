"""Reading the audit trail: requests, responses and sessions, usage stats and rollups, export, retention."""
