"""One model call from route to relay: routing, retries and fallbacks, streaming, sessions."""
