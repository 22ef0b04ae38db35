"""The console's pages at chain scale: an import's rows counted by outcome from an index.

Revision ID: 0017_console_pages
Revises: 0014_dashboard
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0017_console_pages"
down_revision = "0014_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index import rows by import and outcome: the import page's totals read the index alone."""
    op.create_index("ix_import_rows_import_id_outcome", "import_rows", ["import_id", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_import_rows_import_id_outcome", table_name="import_rows")
