"""The run store's first schema: flowruns (indexed search columns, the record as JSON) and
task_logs (one row per task attempt).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flowruns",
        sa.Column("uid", sa.String, primary_key=True),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("flow_name", sa.String, nullable=False),
        sa.Column("version", sa.String),
        sa.Column("level", sa.String),
        sa.Column("run_type", sa.String),
        sa.Column("configuration", sa.String),
        sa.Column("flow_type", sa.String),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("sort_time", TIME, nullable=False),
        sa.Column("start_time", TIME),
        sa.Column("end_time", TIME),
        sa.Column("history_len", sa.Integer, nullable=False),
        sa.Column("resource_version", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_flowruns_sort", "flowruns", ["sort_time", "uid"])
    op.create_index("ix_flowruns_status", "flowruns", ["status", "sort_time", "uid"])
    op.create_index("ix_flowruns_flow", "flowruns", ["flow_name", "status", "sort_time", "uid"])
    op.create_index("ix_flowruns_namespace", "flowruns", ["namespace", "name"])
    op.create_index("ix_flowruns_configuration", "flowruns", ["configuration"])
    op.create_index("ix_flowruns_run_type", "flowruns", ["run_type"])
    op.create_index("ix_flowruns_level", "flowruns", ["level"])
    op.create_index("ix_flowruns_end", "flowruns", ["end_time"])
    op.create_table(
        "task_logs",
        sa.Column("uid", sa.String, primary_key=True),
        sa.Column("task", sa.String, primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("lost_reason", sa.Text),
        sa.Column("captured_at", TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_logs")
    op.drop_table("flowruns")
