"""Tests of the Workflow status (flow_operator.status): the reference document's examples
(tests/golden/workflow) and the rules behind them."""
