"""Moved to flow_operator.kube.leader; this name stays until main.py and runtime.py import
it from there (the lead removes it)."""

from flow_operator.kube.leader import LeaderElector, Leases

__all__ = ["LeaderElector", "Leases"]
