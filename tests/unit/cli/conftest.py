"""Tests of flowctl (flow_operator.cli) on a fake cluster (FakeCluster, test_cli_workflows)."""
