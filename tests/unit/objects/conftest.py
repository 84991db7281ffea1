"""Tests of the readers of Kubernetes bodies (flow_operator.objects)."""
