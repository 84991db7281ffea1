"""Tests of flow_operator.builders: golden Jobs and child runs (tests/golden/flowrun)."""
