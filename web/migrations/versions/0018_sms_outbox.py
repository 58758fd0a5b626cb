"""SMS: durable outbox, templates and delivery reports

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", _text(200), nullable=False),
        sa.Column("out_id", _text(64), nullable=False),
        sa.Column("phone", _text(20), nullable=False),
        sa.Column("kind", _text(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("body", _text(500), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("carrier", _text(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_expiries", sa.Integer(), nullable=False),
        sa.Column("not_before", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", _text(100), nullable=True),
        sa.Column("lease_until", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", _text(100), nullable=True),
        sa.Column("error_code", _text(64), nullable=False),
        sa.Column("error_message", _text(200), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivery", _text(16), nullable=False),
        sa.Column("delivery_code", _text(64), nullable=False),
        sa.Column("delivered_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        sa.UniqueConstraint("out_id"),
    )
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_sms_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sms_outbox_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_outbox_message_id"))
        batch_op.drop_index("ix_sms_outbox_due")
    op.drop_table("sms_outbox")
