"""Workflow color transitions (docs/history.md): one row per (uid, time, to_color), the
natural key that makes a replay (the recorder's retries, the rebuild from the live
Workflows at start) store nothing twice; read by namespace and name over a time window.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_colors",
        sa.Column("uid", sa.String, primary_key=True),
        sa.Column("time", TIME, primary_key=True),
        sa.Column("to_color", sa.String, primary_key=True),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("from_color", sa.String),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_workflow_colors_name", "workflow_colors", ["namespace", "name", "time"])


def downgrade() -> None:
    op.drop_table("workflow_colors")
