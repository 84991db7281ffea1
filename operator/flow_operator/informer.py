"""Moved to flow_operator.kube.informer; this name stays until handlers/children.py imports
it from there (the lead removes it)."""

from flow_operator.kube.informer import BACKOFF_MAX, PAGE, Body, Informer, Key, Lister, Merged

__all__ = ["BACKOFF_MAX", "PAGE", "Body", "Informer", "Key", "Lister", "Merged"]
