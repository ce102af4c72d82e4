"""Observability: recorders, metrics, the request log, OpenTelemetry spans, Prometheus."""
