"""traceparent on reminder and channel_delivery: a reminder's delivery and a webhook/email send continue
the trace of the consumer that created the row (expand-only: two nullable columns, no rewrite).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:50:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('reminder', 'channel_delivery'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('traceparent', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    for table in ('channel_delivery', 'reminder'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('traceparent')
