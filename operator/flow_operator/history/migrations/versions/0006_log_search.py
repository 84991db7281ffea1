"""An index for `logContains`, the substring search over task logs (docs/history.md,
Searching logs).

- PostgreSQL: a GIN trigram index (`pg_trgm`, created by 0002) on `task_logs.text`, which
  serves the store's `text ILIKE '%…%'` for a substring of 3 characters or more.
- SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34 or later),
  `task_logs_fts`, external content over `task_logs` (it stores the index, not a second
  copy of the text), kept by triggers on inserts, changes of the text, and deletes, and
  filled from the logs already stored. The store asks it with a phrase (`MATCH`) for the
  candidate rows, then checks the substring itself, so the answer is the same as without
  it. SQLite's LIKE with an ESCAPE clause cannot use an FTS5 index: hence the MATCH.

The DDL of the virtual table and its triggers is fixed text (SQLAlchemy has no construct
for either); no value is ever put into it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

INDEX = "ix_task_logs_text_trgm"
FTS = "task_logs_fts"
_DELETE = f"INSERT INTO {FTS}({FTS}, rowid, text) VALUES ('delete', OLD.rowid, OLD.text);"
_INSERT = f"INSERT INTO {FTS}(rowid, text) VALUES (NEW.rowid, NEW.text);"
_TRIGGERS = {
    "insert": f"AFTER INSERT ON task_logs BEGIN {_INSERT} END",
    "update": f"AFTER UPDATE OF text ON task_logs BEGIN {_DELETE} {_INSERT} END",
    "delete": f"AFTER DELETE ON task_logs BEGIN {_DELETE} END",
}


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            INDEX,
            "task_logs",
            ["text"],
            postgresql_using="gin",
            postgresql_ops={"text": "gin_trgm_ops"},
        )
        return
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(text, content='task_logs', "
        "content_rowid='rowid', tokenize='trigram')"
    )
    for event, body in _TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {FTS}_{event} {body}")
    op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="task_logs")
        return
    for event in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{event}")
    op.execute(f"DROP TABLE IF EXISTS {FTS}")
