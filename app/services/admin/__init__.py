"""Providers and run-time settings: stored and changed (API, CLI), seen live by every worker, probed, listed."""
