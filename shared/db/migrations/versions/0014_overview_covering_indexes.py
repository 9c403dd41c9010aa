"""Covering indexes for the workspace: the overview's and the worklist's statements read only index
entries, not the assessment rows (whose JSON body put the summary columns of migration 0008 behind overflow
pages on SQLite) nor the reminder rows. The reminder index replaces (org, status, due_at), its prefix.
Measured: the uncached overview at 10,000 patients on SQLite 155 → 45 ms of SQL; the worklist's count, sort
and kinds at 1,000,000 reminders on PostgreSQL 138 → 20 ms (docs/performance.md).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:40:00.000000
"""
from alembic import op


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
REMINDER_COVER = ('org', 'status', 'due_at', 'kind', 'origin', 'created_at', 'escalated_at', 'patient_id', 'id')


def upgrade() -> None:
    with op.batch_alter_table('assessment') as batch:
        batch.create_index(
            'ix_assessment_org_current_summary',
            ['org', 'is_current', 'stage', 'current_mme', 'patient_id', 'flag_codes'],
            unique=False,
        )
        batch.drop_index('ix_assessment_org_current')
    with op.batch_alter_table('reminder') as batch:
        batch.create_index('ix_reminder_org_status_due_cover', list(REMINDER_COVER), unique=False)
        batch.drop_index('ix_reminder_org_status_due')


def downgrade() -> None:
    with op.batch_alter_table('reminder') as batch:
        batch.create_index('ix_reminder_org_status_due', ['org', 'status', 'due_at'], unique=False)
        batch.drop_index('ix_reminder_org_status_due_cover')
    with op.batch_alter_table('assessment') as batch:
        batch.create_index('ix_assessment_org_current', ['org', 'is_current'], unique=False)
        batch.drop_index('ix_assessment_org_current_summary')
