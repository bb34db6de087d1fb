"""Gateway keys: issuing them, checking them on every model call, budgets, rate limits and tags."""
