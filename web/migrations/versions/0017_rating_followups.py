"""bad-rating follow-ups and supervision settings

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 18:00:00

Complaints on ratings, the partial index of the ratings that need a follow-up, thresholds per
department, the follow-ups and their overdue alerts.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BAD_RATING = sa.text("score <= 2 OR complaint")
THRESHOLDS = ("wait_alert_seconds", "waiting_yellow", "waiting_red", "taken_yellow", "taken_red")


def _s(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("case_rating", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("complaint", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_case_rating_bad",
        "case_rating",
        ["rated_at"],
        unique=False,
        postgresql_where=BAD_RATING,
        sqlite_where=BAD_RATING,
    )

    op.create_table(
        "department_threshold",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("department", _s(32), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=True) for name in THRESHOLDS),
        sa.ForeignKeyConstraint(["department"], ["department.code"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("site_id", "department"),
    )

    op.create_table(
        "rating_followup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("complaint", sa.Boolean(), nullable=False),
        _ts("rated_at", nullable=False),
        _ts("opened_at", nullable=False),
        sa.Column("opened_by_node", _s(100), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        _ts("due_at", nullable=False),
        sa.Column("calendar", _s(16), nullable=False),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("callback_outcome", _s(16), nullable=False),
        sa.Column("callback_note", _s(500), nullable=False),
        _ts("called_back_at"),
        sa.Column("called_back_by", sa.Integer(), nullable=True),
        sa.Column("rectification", _s(1000), nullable=False),
        _ts("rectified_at"),
        sa.Column("rectified_by", sa.Integer(), nullable=True),
        _ts("closed_at"),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["called_back_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["service_case.id"]),
        sa.ForeignKeyConstraint(["closed_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["line_id"], ["window_line.id"]),
        sa.ForeignKeyConstraint(["rectified_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    with op.batch_alter_table("rating_followup", schema=None) as batch_op:
        for name in ("line_id", "rated_at", "opened_at", "due_at", "status"):
            batch_op.create_index(batch_op.f(f"ix_rating_followup_{name}"), [name], unique=False)

    op.create_table(
        "followup_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("followup_id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        _ts("due_at", nullable=False),
        sa.Column("status", _s(16), nullable=False),
        _ts("raised_at", nullable=False),
        sa.Column("raised_by_node", _s(100), nullable=False),
        _ts("acknowledged_at"),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("note", _s(500), nullable=False),
        _ts("resolved_at"),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolution", _s(16), nullable=False),
        sa.ForeignKeyConstraint(["acknowledged_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["followup_id"], ["rating_followup.id"]),
        sa.ForeignKeyConstraint(["line_id"], ["window_line.id"]),
        sa.ForeignKeyConstraint(["resolved_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("followup_id"),
    )
    with op.batch_alter_table("followup_alert", schema=None) as batch_op:
        for name in ("line_id", "status", "raised_at"):
            batch_op.create_index(batch_op.f(f"ix_followup_alert_{name}"), [name], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("followup_alert", schema=None) as batch_op:
        for name in ("raised_at", "status", "line_id"):
            batch_op.drop_index(batch_op.f(f"ix_followup_alert_{name}"))
    op.drop_table("followup_alert")
    with op.batch_alter_table("rating_followup", schema=None) as batch_op:
        for name in ("status", "due_at", "opened_at", "rated_at", "line_id"):
            batch_op.drop_index(batch_op.f(f"ix_rating_followup_{name}"))
    op.drop_table("rating_followup")
    op.drop_table("department_threshold")
    op.drop_index("ix_case_rating_bad", table_name="case_rating")
    with op.batch_alter_table("case_rating", schema=None) as batch_op:
        batch_op.drop_column("complaint")
