"""Messaging: Celery app factory, routing, relay, consumer de-duplication."""
