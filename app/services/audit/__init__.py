"""Recording every call: one request row before the upstream call, one response row however it ends."""
