"""Tests of the shared read models (flow_operator.views) that the API and flowctl render."""
