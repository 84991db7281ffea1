"""Tests of the FlowRun state machine (flow_operator.flowrun): pure, an injected now."""
