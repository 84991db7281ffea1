"""Tests of the client package (flow_operator.kube) against fake API servers and Leases."""
