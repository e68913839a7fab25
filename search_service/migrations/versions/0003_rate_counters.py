"""rate counters shared by workers and replicas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counter",
        sa.Column("bucket", sa.String(64), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), primary_key=True),
        sa.Column("hits", sa.Integer(), nullable=False),
    )
    op.create_index("ix_rate_counter_window_start", "rate_counter", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_counter_window_start", table_name="rate_counter")
    op.drop_table("rate_counter")
