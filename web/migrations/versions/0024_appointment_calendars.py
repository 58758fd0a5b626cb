"""appointment calendars: opening hours, slots, no-shows

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("closes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "weekday", "opens"),
    )
    with op.batch_alter_table("site_hours", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_hours_site_id"), ["site_id"], unique=False)
    op.create_table(
        "line_slots",
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["window_line.id"]),
        sa.PrimaryKeyConstraint("line_id"),
    )
    # Hours of the sites that exist, from the hours each was created with (JSON on the site).
    bind = op.get_bind()
    sites = bind.execute(sa.text("SELECT id, opening_hours FROM site")).fetchall()
    rows = []
    for site_id, raw in sites:
        hours = json.loads(raw) if isinstance(raw, str) else (raw or {})
        for weekday, opens, closes in _parse(hours):
            rows.append({"site_id": site_id, "weekday": weekday, "opens": opens, "closes": closes})
    if rows:
        table = sa.table(
            "site_hours",
            sa.column("site_id", sa.Integer),
            sa.column("weekday", sa.Integer),
            sa.column("opens", sa.Integer),
            sa.column("closes", sa.Integer),
        )
        op.bulk_insert(table, rows)


def _parse(hours: dict) -> list[tuple[int, int, int]]:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    out = set()
    for key, periods in hours.items():
        if key not in days:
            continue
        for p in periods or ():
            a, b = (x.strip() for x in str(p).split("-"))
            opens = int(a[:2]) * 60 + int(a[3:5])
            closes = int(b[:2]) * 60 + int(b[3:5])
            if closes > opens:
                out.add((days.index(key), opens, closes))
    return sorted(out)


def downgrade() -> None:
    op.drop_table("line_slots")
    with op.batch_alter_table("site_hours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_hours_site_id"))
    op.drop_table("site_hours")
