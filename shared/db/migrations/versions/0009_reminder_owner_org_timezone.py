"""The coordinators' workspace: a reminder's assignee (a coordinator's subject id), the stage of the
reconciled assessment (the worklist's stage filter, filled from the stored assessments), the
coordinators who signed in to an organisation's worklist (whom a reminder can be assigned to), and the
organisation's time zone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:20:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import shared.db.types


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', shared.db.types.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_reminder_org_assigned', ['org', 'assigned_to'], unique=False)
    with op.batch_alter_table('reminder_reconcile_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    with op.batch_alter_table('org_config', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.create_table('worklist_member',
    sa.Column('org', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('first_seen_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('org', 'subject', name=op.f('pk_worklist_member'))
    )
    # The stage each reconciled patient is at: the assessment whose seq was reconciled.
    op.execute(
        "UPDATE reminder_reconcile_state SET stage = (SELECT a.stage FROM assessment a "
        "WHERE a.patient_id = reminder_reconcile_state.patient_id "
        "AND a.seq = reminder_reconcile_state.assessment_seq)"
    )


def downgrade() -> None:
    op.drop_table('worklist_member')
    with op.batch_alter_table('org_config', schema=None) as batch_op:
        batch_op.drop_column('timezone')
    with op.batch_alter_table('reminder_reconcile_state', schema=None) as batch_op:
        batch_op.drop_column('stage')
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_index('ix_reminder_org_assigned')
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('assigned_to')
