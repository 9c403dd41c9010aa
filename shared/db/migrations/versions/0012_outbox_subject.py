"""Outbox rows name their event's subject (the patient), indexed per consumer: the pathway worker finds the
other pending update events of the patient it evaluates and covers them with the same evaluation
(coalescing). Rows written before this have no subject and are simply never coalesced.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:15:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message') as batch:
        batch.add_column(sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.create_index('ix_outbox_message_consumer_subject', ['consumer', 'subject', 'done_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_message') as batch:
        batch.drop_index('ix_outbox_message_consumer_subject')
        batch.drop_column('subject')
