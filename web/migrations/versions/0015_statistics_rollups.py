"""statistics: rollups per line per 15-minute bucket

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The columns as they were when this revision was written (supervision/models.py generates
# them; a migration keeps its own copy so a later change there needs a new revision).
COUNTS = (
    "taken",
    "served",
    "completed",
    "accepted",
    "returned",
    "no_show",
    "cancelled",
    "abandoned_late",
    "transferred",
    "open_tickets",
    "called",
    "within_target",
    "handled",
    "rated",
    "r1",
    "r2",
    "r3",
    "r4",
    "r5",
    "calls",
    "calls_connected",
    "calls_media",
    "calls_timed",
    "calls_rtt",
    "calls_loss",
    "calls_poor",
    "calls_open",
)
FLOATS = (
    "wait_sum",
    "handle_sum",
    "setup_sum",
    "media_sum",
    "duration_sum",
    "rtt_sum",
    "loss_sum",
    "wait_max",
)
WAIT_BINS = tuple(f"w{i:02d}" for i in range(37))
HOURS = tuple(f"h{i:02d}" for i in range(24))
PENDING = sa.text("pending > 0")


def _measures(*, hours: bool) -> list[sa.Column]:
    cols = [sa.Column(n, sa.Integer(), nullable=False) for n in COUNTS]
    cols += [sa.Column(n, sa.Float(), nullable=False) for n in FLOATS]
    cols += [sa.Column(n, sa.Integer(), nullable=False) for n in WAIT_BINS]
    if hours:
        cols += [sa.Column(n, sa.Integer(), nullable=False) for n in HOURS]
    return cols


def upgrade() -> None:
    op.create_table(
        "stats_slot",
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        *_measures(hours=False),
        sa.PrimaryKeyConstraint("slot", "line_id"),
    )
    op.create_index(
        "ix_stats_slot_pending",
        "stats_slot",
        ["slot"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_table(
        "stats_day",
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("clerk_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("line_id", sa.Integer(), autoincrement=False, nullable=False),
        *_measures(hours=True),
        sa.PrimaryKeyConstraint("item_id", "clerk_id", "day", "line_id"),
    )
    op.create_index("ix_stats_day_day_line", "stats_day", ["day", "line_id"], unique=False)
    op.create_table(
        "stats_month",
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("clerk_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("line_id", sa.Integer(), autoincrement=False, nullable=False),
        *_measures(hours=False),
        sa.PrimaryKeyConstraint("item_id", "clerk_id", "month", "line_id"),
    )
    op.create_table(
        "stats_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rolled_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rolled_by_node", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("stats_rollup")
    op.drop_table("stats_month")
    op.drop_index("ix_stats_day_day_line", table_name="stats_day")
    op.drop_table("stats_day")
    op.drop_index("ix_stats_slot_pending", table_name="stats_slot")
    op.drop_table("stats_slot")
