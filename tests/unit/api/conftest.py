"""Tests of flow_operator.api (the HTTP API and the dashboard) on in-memory backends.

The shared fakes are tests/unit/api_support.py and api_contract.py (tests/e2e uses the
contract too); fixtures particular to one file stay in it."""
