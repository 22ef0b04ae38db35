"""Import runs: each run of a legacy member import with its progress and how it ended.

Revision ID: 0016_import_runs
Revises: 0015_customer_notes
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_import_runs"
down_revision = "0015_customer_notes"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create ``import_runs``."""
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        _ts("started_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_skipped", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_import_runs"),
        sa.ForeignKeyConstraint(["import_id"], ["member_imports.id"], name="fk_import_runs_import_id_member_imports"),
    )
    op.create_index("ix_import_runs_import_id", "import_runs", ["import_id"])


def downgrade() -> None:
    """Drop ``import_runs`` (development only: the run history goes)."""
    op.drop_index("ix_import_runs_import_id", table_name="import_runs")
    op.drop_table("import_runs")
