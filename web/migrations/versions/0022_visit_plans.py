"""home-visit plans, courier deliveries and proofs

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("home_visit_minutes", sa.Integer(), nullable=False, server_default="40")
        )
        batch_op.add_column(
            sa.Column("home_visit_skills", sa.JSON(), nullable=False, server_default="[]")
        )

    op.create_table(
        "visit_plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("change", _str(16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("note", _str(300), nullable=False),
        sa.Column("problem", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("locked", sa.JSON(), nullable=False),
        sa.Column("urgent", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["visit_plan.id"]),
        sa.ForeignKeyConstraint(["published_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "day", "version"),
    )
    with op.batch_alter_table("visit_plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_plan_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_plan_day"), ["day"], unique=False)

    op.create_table(
        "visit_check_in",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["visit_id"], ["home_visit.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("visit_id"),
    )
    with op.batch_alter_table("visit_check_in", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_check_in_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("visit_check_in", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_check_in_staff_id"))
    op.drop_table("visit_check_in")
    with op.batch_alter_table("visit_plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_plan_day"))
        batch_op.drop_index(batch_op.f("ix_visit_plan_site_id"))
    op.drop_table("visit_plan")
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.drop_column("home_visit_skills")
        batch_op.drop_column("home_visit_minutes")
