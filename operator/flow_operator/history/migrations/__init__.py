"""Alembic's migrations of the run store's schema; `flow_operator.history.sql.migrate` runs
them. A new revision: `alembic -x dsn=sqlite:///x.db revision -m "what"` is not set up (no
alembic.ini); copy the newest file in versions/, give it the next number as `revision` and
the previous one as `down_revision`, and write `upgrade`/`downgrade` with `op.*` calls.
Never edit a revision that has been released: databases out there are at it.
"""
