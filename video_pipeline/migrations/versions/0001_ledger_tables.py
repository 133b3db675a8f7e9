"""The ledger's tables as the last release before migrations made them (`metadata.create_all`).

On a new database this creates them. A ledger made before migrations has no version table: this revision then
adopts it, keeping its rows. It creates the tables the ledger lacks (`campaign_budgets` came with the money
columns; the oldest ledgers hold only `model_observations`), adds the columns added since its release (all nullable:
`estimated_usd` … `resolution`, which the previous releases added on open) and the indexes it lacks.

Revision ID: 0001
Revises:
Create Date: 2026-12-02 00:00:00

Written once and never edited after it is released: a ledger somewhere is at this revision. Spell tables and columns
out here (as autogenerate does); never import them from the code, which moves on.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def provider_jobs() -> list:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_key", sa.String(64), nullable=False, index=True),
        sa.Column("campaign", sa.String(64), nullable=False, index=True),
        sa.Column("video_id", sa.String(64), nullable=False),
        sa.Column("segment_index", sa.Integer, nullable=False),
        sa.Column("model", sa.String(64), nullable=False, index=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_job_id", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("error_kind", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_seconds", sa.Float, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("output_url", sa.Text, nullable=True),
        sa.Column("url_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stored_uri", sa.Text, nullable=True),
        sa.Column("stored_sha256", sa.String(64), nullable=True),
        sa.Column("estimated_usd", sa.Float, nullable=True),
        sa.Column("reserved_usd", sa.Float, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uncertain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
        sa.UniqueConstraint("provider", "provider_job_id", name="uq_provider_job"),
    ]


def campaign_budgets() -> list:
    return [
        sa.Column("campaign", sa.String(64), primary_key=True),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def job_events() -> list:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(256), nullable=False),
        sa.Column("provider_job_id", sa.String(512), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("provider", "delivery_id", name="uq_delivery"),
    ]


def model_observations() -> list:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False, index=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("latency_seconds", sa.Float, nullable=True),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("error_kind", sa.String(16), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False, index=True),
    ]


#: each table and its columns, fresh objects on each call (a column belongs to one table)
TABLES: dict[str, Callable[[], list]] = {
    "provider_jobs": provider_jobs, "campaign_budgets": campaign_budgets, "job_events": job_events,
    "model_observations": model_observations,
}


def upgrade() -> None:
    inspector = None if op.get_context().as_sql else sa.inspect(op.get_bind())
    for name, columns in TABLES.items():
        if inspector is None or not inspector.has_table(name):
            op.create_table(name, *columns())
            continue
        have = {c["name"] for c in inspector.get_columns(name)}
        for column in columns():
            if isinstance(column, sa.Column) and column.name not in have:
                op.add_column(name, column)
        indexed = {i["name"] for i in inspector.get_indexes(name)}
        for index in sa.Table(name, sa.MetaData(), *columns()).indexes:
            if index.name not in indexed:
                op.create_index(index.name, name, [c.name for c in index.columns])


def downgrade() -> None:
    raise RuntimeError("revision 0001 is the ledger's first: going below it would drop every record of what "
                       "was paid. Drop the tables by hand if that is really meant.")
