"""Tests of the reconcilers, the work queue and the status writes (flow_operator.reconcile)
on tests/unit/fake_kube.py; clocks are injected, nothing sleeps."""
