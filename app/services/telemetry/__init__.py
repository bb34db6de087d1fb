"""Operating signals of the gateway: Prometheus series, the per-call log line, OpenTelemetry traces."""
