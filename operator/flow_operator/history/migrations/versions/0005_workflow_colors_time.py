"""An index on workflow_colors.time for prune's age delete (docs/history.md, Retention):
each batch finds the transitions older than `maxAge` by time instead of scanning the
table (audit_log has ix_audit_log_time already).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_workflow_colors_time", "workflow_colors", ["time"])


def downgrade() -> None:
    op.drop_index("ix_workflow_colors_time", table_name="workflow_colors")
