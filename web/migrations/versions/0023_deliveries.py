"""courier deliveries and proofs

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("service_case", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("licence_delivery", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("licence_id", sa.Integer(), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("from_site_id", sa.Integer(), nullable=False),
        sa.Column("to_site_id", sa.Integer(), nullable=False),
        sa.Column("address_cipher", _str(1000), nullable=False),
        sa.Column("address_masked", _str(200), nullable=False),
        sa.Column("courier_id", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", _str(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("code_hash", _str(64), nullable=False),
        _ts("code_expires_at", nullable=True),
        sa.Column("wrong_last4", sa.Integer(), nullable=False),
        sa.Column("wrong_codes", sa.Integer(), nullable=False),
        _ts("locked_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("delivered_at", nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["service_case.id"]),
        sa.ForeignKeyConstraint(["courier_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["from_site_id"], ["site.id"]),
        sa.ForeignKeyConstraint(["licence_id"], ["licence.id"]),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"]),
        sa.ForeignKeyConstraint(["to_site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_from_site_id"), ["from_site_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delivery_courier_id"), ["courier_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_day"), ["day"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_status"), ["status"], unique=False)

    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("courier_id", sa.Integer(), nullable=False),
        sa.Column("reason", _str(16), nullable=False),
        sa.Column("note", _str(300), nullable=False),
        _ts("at"),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("next_day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["courier_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id", "attempt"),
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempt_delivery_id"), ["delivery_id"], unique=False
        )

    op.create_table(
        "delivery_proof",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", _str(64), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("courier_id", sa.Integer(), nullable=False),
        sa.Column("recipient", _str(16), nullable=False),
        sa.Column("proxy_name", _str(50), nullable=False),
        sa.Column("proxy_id_last4", _str(4), nullable=False),
        sa.Column("proxy_relation", _str(20), nullable=False),
        sa.Column("photo_key", _str(200), nullable=False),
        sa.Column("signature_key", _str(200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        _ts("captured_at"),
        _ts("received_at"),
        sa.ForeignKeyConstraint(["courier_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
        sa.UniqueConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("delivery_proof")
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_delivery_id"))
    op.drop_table("delivery_attempt")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_status"))
        batch_op.drop_index(batch_op.f("ix_delivery_day"))
        batch_op.drop_index(batch_op.f("ix_delivery_courier_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_from_site_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_resident_id"))
    op.drop_table("delivery")
    with op.batch_alter_table("service_case", schema=None) as batch_op:
        batch_op.drop_column("licence_delivery")
