"""Worklist sign-in: per-organisation OpenID Connect providers, server-side sessions, and the CDS clients'
allowed FHIR servers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:20:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import shared.db.types


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oidc_provider',
    sa.Column('org', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('client_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('role_claim', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('role_map', sa.JSON(), nullable=False),
    sa.Column('scopes', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('updated_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('org', name=op.f('pk_oidc_provider'))
    )
    op.create_table('worklist_session',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('org', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.Column('expires_at', shared.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worklist_session')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_worklist_session_secret_hash'))
    )
    with op.batch_alter_table('worklist_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worklist_session_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_worklist_session_org'), ['org'], unique=False)
        batch_op.create_index(batch_op.f('ix_worklist_session_subject'), ['subject'], unique=False)
    with op.batch_alter_table('cds_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fhir_servers', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cds_client', schema=None) as batch_op:
        batch_op.drop_column('fhir_servers')
    with op.batch_alter_table('worklist_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worklist_session_subject'))
        batch_op.drop_index(batch_op.f('ix_worklist_session_org'))
        batch_op.drop_index(batch_op.f('ix_worklist_session_expires_at'))
    op.drop_table('worklist_session')
    op.drop_table('oidc_provider')
