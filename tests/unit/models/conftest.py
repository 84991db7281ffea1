"""Tests of the models (flow_operator.models) and the CRDs generated from them."""
