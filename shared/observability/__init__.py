"""Metrics, health heartbeats, structured logs, request ids and tracing shared by every process type
(docs/operations.md). Nothing here knows a service; the composition root (carepath/) wires it in."""
