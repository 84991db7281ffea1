"""Run history that outlives the cluster (issue 16): the run store and its pure parts.

`store` is the port (the `RunStore` protocol, its value types, the project's own errors and
`NullRunStore`), `sql` the one SQL implementation (SQLite or PostgreSQL, migrated by
Alembic), `record` maps a FlowRun body to a `RunRecord` and `retention` decides which
finished runs may leave the cluster. The operator uses it through reconcile/history.py.
"""
