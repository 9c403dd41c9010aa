"""A partial index of the unfinished pathway update rows (subject, id): the relay defers a patient's later
update events while an earlier one is unfinished (shared/messaging/relay.py _covered_later) and finds that
earlier row with an index-only scan; on PostgreSQL it also keeps the claim's estimated cost under the JIT
threshold (a correlated scan of ix_outbox_message_consumer_subject crossed it and paid ~17 ms of JIT).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 06:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PENDING_PATHWAY_UPDATE = "consumer = 'pathway' AND event_type = 'carepath.patient.updated' AND done_at IS NULL"


def upgrade() -> None:
    op.create_index(
        'ix_outbox_message_pending_pathway_update',
        'outbox_message',
        ['subject', 'id'],
        unique=False,
        postgresql_where=sa.text(PENDING_PATHWAY_UPDATE),
        sqlite_where=sa.text(PENDING_PATHWAY_UPDATE),
    )


def downgrade() -> None:
    op.drop_index('ix_outbox_message_pending_pathway_update', table_name='outbox_message')
