"""resident pages: single-use SMS link tokens

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resident_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("resident_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resident_link_token_hash"), ["token_hash"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_resident_link_resident_id"), ["resident_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resident_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resident_link_resident_id"))
        batch_op.drop_index(batch_op.f("ix_resident_link_token_hash"))
    op.drop_table("resident_link")
