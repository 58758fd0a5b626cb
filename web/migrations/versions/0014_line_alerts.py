"""line alerts: yellow and red per line, with per-line thresholds

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

EPISODE = sa.text("cleared_at IS NULL")
THRESHOLDS = ("waiting_yellow", "waiting_red", "taken_yellow", "taken_red")


def upgrade() -> None:
    with op.batch_alter_table("line_threshold", schema=None) as batch_op:
        for name in THRESHOLDS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
    op.create_table(
        "line_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("measure", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("raised_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("red_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("raised_by_node", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("acknowledged_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("resolved_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolution", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("cleared_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["acknowledged_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["line_id"], ["window_line.id"]),
        sa.ForeignKeyConstraint(["resolved_by"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("line_alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_line_alert_line_id"), ["line_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_line_alert_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_line_alert_raised_at"), ["raised_at"], unique=False)
    op.create_index(
        "ux_line_alert_episode",
        "line_alert",
        ["line_id", "measure"],
        unique=True,
        postgresql_where=EPISODE,
        sqlite_where=EPISODE,
    )
    op.create_index("ix_ticket_created_at", "ticket", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ticket_created_at", table_name="ticket")
    op.drop_index("ux_line_alert_episode", table_name="line_alert")
    with op.batch_alter_table("line_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_line_alert_raised_at"))
        batch_op.drop_index(batch_op.f("ix_line_alert_status"))
        batch_op.drop_index(batch_op.f("ix_line_alert_line_id"))
    op.drop_table("line_alert")
    with op.batch_alter_table("line_threshold", schema=None) as batch_op:
        for name in reversed(THRESHOLDS):
            batch_op.drop_column(name)
