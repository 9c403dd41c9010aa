"""Coordinators' workspace: read copies of each assessment's flag codes and current MME (SQL aggregation for
the population overview), `is_current` marking each patient's newest row, and their indexes. Existing rows
are filled from their bodies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:30:00.000000
"""
import json

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _summary(body: object) -> tuple[str, float | None]:
    """A copy of shared.db.tables.core.summary_columns as it was at this revision (migrations stay fixed)."""
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        return "", None
    codes = sorted({str(f["code"]) for f in body.get("flags", []) if isinstance(f, dict) and "code" in f})
    mme = body.get("current_mme")
    return (f" {' '.join(codes)} " if codes else ""), (float(mme) if isinstance(mme, (int, float)) else None)


def upgrade() -> None:
    with op.batch_alter_table('assessment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag_codes', sa.String(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('current_mme', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('is_current', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_assessment_org_patient_seq', ['org', 'patient_id', 'seq'], unique=False)
        batch_op.create_index('ix_assessment_org_current', ['org', 'is_current'], unique=False)
    bind = op.get_bind()
    table = sa.table('assessment', sa.column('id', sa.Integer), sa.column('body', sa.JSON),
                     sa.column('flag_codes', sa.String), sa.column('current_mme', sa.Float))
    last = 0
    while True:
        rows = bind.execute(sa.select(table.c.id, table.c.body).where(table.c.id > last)
                            .order_by(table.c.id).limit(1000)).all()
        if not rows:
            break
        for row_id, body in rows:
            codes, mme = _summary(body)
            bind.execute(table.update().where(table.c.id == row_id).values(flag_codes=codes, current_mme=mme))
        last = rows[-1][0]
    bind.execute(sa.text(
        "UPDATE assessment SET is_current = (seq = (SELECT max(newer.seq) FROM assessment AS newer "
        "WHERE newer.patient_id = assessment.patient_id))"
    ))


def downgrade() -> None:
    with op.batch_alter_table('assessment', schema=None) as batch_op:
        batch_op.drop_index('ix_assessment_org_current')
        batch_op.drop_index('ix_assessment_org_patient_seq')
        batch_op.drop_column('is_current')
        batch_op.drop_column('current_mme')
        batch_op.drop_column('flag_codes')
