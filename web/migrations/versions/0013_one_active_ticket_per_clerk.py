"""one active ticket per clerk

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('called', 'serving')")


def upgrade() -> None:
    op.create_index(
        "ux_ticket_active_clerk",
        "ticket",
        ["called_by"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ux_ticket_active_clerk", table_name="ticket")
