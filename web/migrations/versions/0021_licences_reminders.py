"""licence register and expiry reminders

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")
SCHEDULED = sa.text("status = 'scheduled'")
ONE_TYPE = sa.text("type_id IS NOT NULL")
EVERY_TYPE = sa.text("type_id IS NULL")


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_run",
        sa.Column("name", _str(64), nullable=False),
        _ts("period_start"),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claimed_by", _str(100), nullable=False),
        _ts("claimed_at"),
        _ts("lease_until"),
        _ts("finished_at", nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("error", _str(500), nullable=False),
        sa.PrimaryKeyConstraint("name", "period_start"),
    )
    op.create_table(
        "licence_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", _str(32), nullable=False),
        sa.Column("name", _str(100), nullable=False),
        sa.Column("name_en", _str(200), nullable=False),
        sa.Column("validity_months", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("licence_type", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_type_code"), ["code"], unique=True)
    op.create_table(
        "licence_reminder_offset",
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["type_id"], ["licence_type.id"]),
        sa.PrimaryKeyConstraint("type_id", "offset_days"),
    )
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("licence_type_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_service_item_licence_type_id", "licence_type", ["licence_type_id"], ["id"]
        )
    op.create_table(
        "licence_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", _str(200), nullable=False),
        sa.Column("sha256", _str(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("residents_created", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.Integer(), nullable=True),
        _ts("at"),
        sa.ForeignKeyConstraint(["imported_by"], ["staff.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "licence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("number", _str(64), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("source", _str(16), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("renewed_by", sa.Integer(), nullable=True),
        _ts("renewed_at", nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["case_id"], ["service_case.id"]),
        sa.ForeignKeyConstraint(["import_id"], ["licence_import.id"]),
        sa.ForeignKeyConstraint(["renewed_by"], ["licence.id"]),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.ForeignKeyConstraint(["type_id"], ["licence_type.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
        sa.UniqueConstraint("type_id", "number", name="ux_licence_number"),
    )
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licence_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licence_import_id"), ["import_id"], unique=False)
    op.create_index(
        "ix_licence_due",
        "licence",
        ["expires_on", "type_id"],
        unique=False,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "licence_reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("licence_id", sa.Integer(), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("channel", _str(8), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        _ts("send_after"),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("reason", _str(16), nullable=False),
        _ts("planned_at"),
        _ts("queued_at", nullable=True),
        sa.Column("sms_key", _str(200), nullable=False),
        sa.ForeignKeyConstraint(["licence_id"], ["licence.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("licence_id", "offset_days", "channel", name="ux_licence_reminder"),
    )
    with op.batch_alter_table("licence_reminder", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_licence_reminder_planned_at"), ["planned_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_licence_reminder_queued_at"), ["queued_at"], unique=False
        )
    op.create_index(
        "ix_licence_reminder_send",
        "licence_reminder",
        ["send_after"],
        unique=False,
        postgresql_where=SCHEDULED,
        sqlite_where=SCHEDULED,
    )
    op.create_table(
        "reminder_opt_out",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=True),
        sa.Column("source", _str(16), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"]),
        sa.ForeignKeyConstraint(["type_id"], ["licence_type.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reminder_opt_out", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reminder_opt_out_created_at"), ["created_at"], unique=False
        )
    op.create_index(
        "ux_reminder_opt_out_type",
        "reminder_opt_out",
        ["resident_id", "type_id"],
        unique=True,
        postgresql_where=ONE_TYPE,
        sqlite_where=ONE_TYPE,
    )
    op.create_index(
        "ux_reminder_opt_out_all",
        "reminder_opt_out",
        ["resident_id"],
        unique=True,
        postgresql_where=EVERY_TYPE,
        sqlite_where=EVERY_TYPE,
    )


def downgrade() -> None:
    op.drop_index("ux_reminder_opt_out_all", table_name="reminder_opt_out")
    op.drop_index("ux_reminder_opt_out_type", table_name="reminder_opt_out")
    with op.batch_alter_table("reminder_opt_out", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminder_opt_out_created_at"))
    op.drop_table("reminder_opt_out")
    op.drop_index("ix_licence_reminder_send", table_name="licence_reminder")
    with op.batch_alter_table("licence_reminder", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_reminder_queued_at"))
        batch_op.drop_index(batch_op.f("ix_licence_reminder_planned_at"))
    op.drop_table("licence_reminder")
    op.drop_index("ix_licence_due", table_name="licence")
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_import_id"))
        batch_op.drop_index(batch_op.f("ix_licence_site_id"))
        batch_op.drop_index(batch_op.f("ix_licence_resident_id"))
    op.drop_table("licence")
    op.drop_table("licence_import")
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.drop_constraint("fk_service_item_licence_type_id", type_="foreignkey")
        batch_op.drop_column("licence_type_id")
    op.drop_table("licence_reminder_offset")
    with op.batch_alter_table("licence_type", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_type_code"))
    op.drop_table("licence_type")
    op.drop_table("job_run")
