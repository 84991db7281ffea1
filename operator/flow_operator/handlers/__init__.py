"""kopf wiring only: indexes and event handlers that feed the reconcilers' work queues."""
