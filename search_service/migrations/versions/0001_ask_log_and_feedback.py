"""ask log and feedback

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ask_log",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("cited_pages", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("fallback", sa.Text(), nullable=True),
        sa.Column("user_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ask_log_created_at", "ask_log", ["created_at"])
    op.create_index("ix_ask_log_answered", "ask_log", ["answered"])
    op.create_index("ix_ask_log_user_hash", "ask_log", ["user_hash"])
    op.create_table(
        "feedback",
        sa.Column("answer_id", sa.String(32), sa.ForeignKey("ask_log.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("ask_log")
