"""A configuration's runs newest first: ix_flowruns_configuration_sort on (configuration,
sort_time, uid) replaces ix_flowruns_configuration (configuration), which it covers.

The configuration search (docs/history.md, Reading at scale) reads each matching
configuration's newest runs from it and merges them, so a page costs a few index
descents whether the substring is rare or common.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_flowruns_configuration_sort", "flowruns", ["configuration", "sort_time", "uid"]
    )
    op.drop_index("ix_flowruns_configuration", table_name="flowruns")


def downgrade() -> None:
    op.create_index("ix_flowruns_configuration", "flowruns", ["configuration"])
    op.drop_index("ix_flowruns_configuration_sort", table_name="flowruns")
