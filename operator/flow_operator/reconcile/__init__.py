"""Reconcilers: read the in-memory view kopf keeps, decide with the pure core, write."""
