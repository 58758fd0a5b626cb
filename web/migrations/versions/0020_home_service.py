"""home-service requests, triage and visits

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

OPEN_REQUEST = sa.text("status NOT IN ('delivered', 'declined', 'cancelled')")
OPEN_VISIT = sa.text("status = 'scheduled'")


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("home_visit", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("home_visit_for", sa.JSON(), nullable=False, server_default="[]")
        )

    op.create_table(
        "home_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("channel", _str(16), nullable=False),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("preferred", sa.JSON(), nullable=False),
        sa.Column("address_masked", _str(200), nullable=False),
        sa.Column("private_cipher", _str(8000), nullable=False),
        sa.Column("info_question", _str(500), nullable=False),
        sa.Column("decline_reason", _str(500), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["service_case.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["service_item.id"]),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("home_request", schema=None) as batch_op:
        for column in ("resident_id", "case_id", "site_id", "status", "created_by", "created_at"):
            batch_op.create_index(batch_op.f(f"ix_home_request_{column}"), [column], unique=False)
    op.create_index(
        "ux_home_request_open",
        "home_request",
        ["resident_id", "item_id"],
        unique=True,
        sqlite_where=OPEN_REQUEST,
        postgresql_where=OPEN_REQUEST,
    )

    op.create_table(
        "home_visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("planned_by", _str(16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("basis_confirmed", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["home_request.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("home_visit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_home_visit_request_id"), ["request_id"], unique=False)
        batch_op.create_index("ix_home_visit_staff_time", ["staff_id", "starts_at"], unique=False)
    op.create_index(
        "ux_home_visit_open",
        "home_visit",
        ["request_id"],
        unique=True,
        sqlite_where=OPEN_VISIT,
        postgresql_where=OPEN_VISIT,
    )


def downgrade() -> None:
    op.drop_index("ux_home_visit_open", table_name="home_visit")
    with op.batch_alter_table("home_visit", schema=None) as batch_op:
        batch_op.drop_index("ix_home_visit_staff_time")
        batch_op.drop_index(batch_op.f("ix_home_visit_request_id"))
    op.drop_table("home_visit")
    op.drop_index("ux_home_request_open", table_name="home_request")
    with op.batch_alter_table("home_request", schema=None) as batch_op:
        for column in ("created_at", "created_by", "status", "site_id", "case_id", "resident_id"):
            batch_op.drop_index(batch_op.f(f"ix_home_request_{column}"))
    op.drop_table("home_request")
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.drop_column("home_visit_for")
        batch_op.drop_column("home_visit")
