"""Content search: the text of each call, indexed off the hot path, and queries over it (REST, CLI, dashboard)."""
