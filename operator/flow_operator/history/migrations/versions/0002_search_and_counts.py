"""Fast search and counts at a million runs: trigram indexes for the substring searches on
PostgreSQL, and per (namespace, flow, configuration, status) counts kept by triggers on
both backends.

- PostgreSQL: the `pg_trgm` extension (trusted since PostgreSQL 13: a database owner may
  create it) and GIN trigram indexes on name, flow and configuration, which serve the
  store's `ILIKE '%…%'` searches.
- `flowrun_counts`: one row per (namespace, flow, configuration, status) with its number
  of runs (configuration '' when the run has none), kept by triggers on `flowruns`
  (inserts, changes of those columns, deletes), so counts by status never scan the runs,
  nor do they for a configuration substring (a few thousand counter rows match it).
  PostgreSQL's triggers are per statement (transition tables, the counter rows touched in
  key order, so concurrent writers cannot deadlock on them); SQLite's are per row. The
  table is filled from the runs already stored.

The trigger bodies are fixed DDL text (SQLAlchemy has no construct for triggers); no value
is ever put into them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

TRIGRAM = ("name", "flow_name", "configuration")
KEY = ("namespace", "flow_name", "configuration", "status")

_PG_TALLY = """
INSERT INTO flowrun_counts AS c (namespace, flow_name, configuration, status, n)
SELECT namespace, flow_name, configuration, status, sum(d) FROM ({rows}) AS t
GROUP BY namespace, flow_name, configuration, status HAVING sum(d) <> 0
ORDER BY namespace, flow_name, configuration, status
ON CONFLICT (namespace, flow_name, configuration, status) DO UPDATE SET n = c.n + EXCLUDED.n;
"""
_PG_COLUMNS = "namespace, flow_name, coalesce(configuration, '') AS configuration, status"
_PG_NEW = f"SELECT {_PG_COLUMNS}, 1 AS d FROM new_rows"
_PG_OLD = f"SELECT {_PG_COLUMNS}, -1 AS d FROM old_rows"
_PG_ROWS = {
    "insert": _PG_NEW,
    "update": f"{_PG_OLD} UNION ALL {_PG_NEW}",
    "delete": _PG_OLD,
}
_PG_REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}

_LITE_ADD = """
INSERT INTO flowrun_counts (namespace, flow_name, configuration, status, n)
VALUES (NEW.namespace, NEW.flow_name, coalesce(NEW.configuration, ''), NEW.status, 1)
ON CONFLICT (namespace, flow_name, configuration, status) DO UPDATE SET n = n + 1;
"""
_LITE_REMOVE = """
UPDATE flowrun_counts SET n = n - 1
WHERE namespace = OLD.namespace AND flow_name = OLD.flow_name
AND configuration = coalesce(OLD.configuration, '') AND status = OLD.status;
"""
_LITE_TRIGGERS = {
    "insert": f"AFTER INSERT ON flowruns BEGIN {_LITE_ADD} END",
    "update": (
        "AFTER UPDATE OF namespace, flow_name, configuration, status ON flowruns "
        "WHEN OLD.namespace IS NOT NEW.namespace OR OLD.flow_name IS NOT NEW.flow_name "
        "OR OLD.configuration IS NOT NEW.configuration OR OLD.status IS NOT NEW.status "
        f"BEGIN {_LITE_REMOVE} {_LITE_ADD} END"
    ),
    "delete": f"AFTER DELETE ON flowruns BEGIN {_LITE_REMOVE} END",
}


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in TRIGRAM:
            op.create_index(
                f"ix_flowruns_{column}_trgm",
                "flowruns",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
    counts = op.create_table(
        "flowrun_counts",
        sa.Column("namespace", sa.String, primary_key=True),
        sa.Column("flow_name", sa.String, primary_key=True),
        sa.Column("configuration", sa.String, primary_key=True),
        sa.Column("status", sa.String, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    runs = sa.table("flowruns", *(sa.column(k) for k in KEY))
    key = [
        sa.func.coalesce(runs.c[k], "").label(k) if k == "configuration" else runs.c[k] for k in KEY
    ]
    op.execute(
        counts.insert().from_select([*KEY, "n"], sa.select(*key, sa.func.count()).group_by(*key))
    )
    for event in ("insert", "update", "delete"):
        name = f"flowrun_counts_{event}"
        if postgres:
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"{_PG_TALLY.format(rows=_PG_ROWS[event])} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event.upper()} ON flowruns "
                f"REFERENCING {_PG_REFERENCING[event]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
        else:
            op.execute(f"CREATE TRIGGER {name} {_LITE_TRIGGERS[event]}")


def downgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for event in ("insert", "update", "delete"):
        name = f"flowrun_counts_{event}"
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON flowruns" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("flowrun_counts")
    if postgres:
        # The extension stays: something else in the database may use it.
        for column in TRIGRAM:
            op.drop_index(f"ix_flowruns_{column}_trgm", table_name="flowruns")
