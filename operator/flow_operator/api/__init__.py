"""The operator's HTTP edge: the Workflow status API, the flow-run API and the dashboard.

Everything here reads the operator's in-memory view (kopf indexes) and never the API
server per request, except for what only the API server has: Secret values (cached with
a short TTL, only Secrets a Workflow references) and pod logs (streamed on demand).
"""
