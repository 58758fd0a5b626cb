"""item eligibility rules

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_age", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_age", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("needs_disability", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "needs_local_residence", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.drop_column("needs_local_residence")
        batch_op.drop_column("needs_disability")
        batch_op.drop_column("max_age")
        batch_op.drop_column("min_age")
