"""tidal windows: clerk moves between lines

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table(
        "tidal_move",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("from_line_id", sa.Integer(), nullable=False),
        sa.Column("to_line_id", sa.Integer(), nullable=False),
        sa.Column("fit", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("until", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.Integer(), nullable=True),
        sa.Column("target_sl_before", sa.Float(), nullable=False),
        sa.Column("target_sl_after", sa.Float(), nullable=False),
        sa.Column("donor_sl_before", sa.Float(), nullable=False),
        sa.Column("donor_sl_after", sa.Float(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("ended_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.Column("end_reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ended_by_node", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.ForeignKeyConstraint(["applied_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["ended_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["from_line_id"], ["window_line.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["to_line_id"], ["window_line.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tidal_move", schema=None) as batch_op:
        for name in ("staff_id", "from_line_id", "to_line_id", "status", "started_at", "until"):
            batch_op.create_index(batch_op.f(f"ix_tidal_move_{name}"), [name], unique=False)
    op.create_index(
        "ux_tidal_move_active_staff",
        "tidal_move",
        ["staff_id"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "tidal_shortfall",
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("window_start", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("arrivals_per_hour", sa.Float(), nullable=False),
        sa.Column("handling_seconds", sa.Integer(), nullable=False),
        sa.Column("clerks", sa.Integer(), nullable=False),
        sa.Column("needed", sa.Integer(), nullable=False),
        sa.Column("service_level", sa.Float(), nullable=False),
        sa.Column("short", sa.Boolean(), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["window_line.id"]),
        sa.PrimaryKeyConstraint("line_id", "window_start"),
    )
    with op.batch_alter_table("tidal_shortfall", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tidal_shortfall_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tidal_shortfall", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tidal_shortfall_updated_at"))
    op.drop_table("tidal_shortfall")
    op.drop_index("ux_tidal_move_active_staff", table_name="tidal_move")
    with op.batch_alter_table("tidal_move", schema=None) as batch_op:
        for name in ("until", "started_at", "status", "to_line_id", "from_line_id", "staff_id"):
            batch_op.drop_index(batch_op.f(f"ix_tidal_move_{name}"))
    op.drop_table("tidal_move")
