"""reminder origin (pathway | rule_change + rule set version) and resolved citation sources

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 20:20:00

Existing reminders are the pathway's own (origin "pathway", no sources): the server default fills them in
one statement, without rewriting rows on PostgreSQL 11+ (a constant default).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sources', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=20), server_default='pathway', nullable=False)
        )
        batch_op.add_column(
            sa.Column('origin_rule_set_version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_column('origin_rule_set_version')
        batch_op.drop_column('origin')
        batch_op.drop_column('sources')
