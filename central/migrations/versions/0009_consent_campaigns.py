"""Consent decisions, scheduled jobs' leases and runs, triggers with their occasion ledger, webhooks, exports.

Revision ID: 0009_consent_campaigns
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_consent_campaigns"
down_revision = "0006_member_codes"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the consent, jobs and campaigns tables."""
    op.create_table(
        "consent_decisions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        _ts("observed_at"),
        _ts("recorded_at"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("notice_version", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("origin_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consent_decisions"),
        sa.UniqueConstraint("origin", "origin_id", name="uq_consent_decisions_origin_origin_id"),
    )
    op.create_index("ix_consent_decisions_customer_id_purpose", "consent_decisions", ["customer_id", "purpose"])
    op.create_index("ix_consent_decisions_event_pk", "consent_decisions", ["event_pk"])
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(128), nullable=False),
        _ts("started_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_name", "job_runs", ["name"])
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("action_params", sa.JSON(), nullable=False),
        sa.Column("control_percent", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_triggers"),
        sa.UniqueConstraint("name", name="uq_triggers_name"),
    )
    op.create_table(
        "trigger_occasions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("occasion", sa.String(32), nullable=False),
        sa.Column("grp", sa.String(8), nullable=False),
        _ts("fired_at"),
        sa.Column("instance", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trigger_occasions"),
        sa.UniqueConstraint(
            "trigger_id", "customer_id", "occasion", name="uq_trigger_occasions_trigger_id_customer_id_occasion"
        ),
    )
    op.create_index("ix_trigger_occasions_trigger_id_occasion", "trigger_occasions", ["trigger_id", "occasion"])
    op.create_index("ix_trigger_occasions_customer_id", "trigger_occasions", ["customer_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("occasion_id", sa.BigInteger(), nullable=True),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("next_attempt_at"),
        _ts("finished_at", nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("occasion_id", name="uq_webhook_deliveries_occasion_id"),
    )
    op.create_index("ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "trigger_exports",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("occasion_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("occasion", sa.String(32), nullable=False),
        _ts("added_at"),
        sa.PrimaryKeyConstraint("id", name="pk_trigger_exports"),
        sa.UniqueConstraint("occasion_id", name="uq_trigger_exports_occasion_id"),
    )
    op.create_index("ix_trigger_exports_trigger_id", "trigger_exports", ["trigger_id"])


def downgrade() -> None:
    """Drop them again."""
    for name in (
        "trigger_exports",
        "webhook_deliveries",
        "trigger_occasions",
        "triggers",
        "job_runs",
        "job_leases",
        "consent_decisions",
    ):
        op.drop_table(name)
