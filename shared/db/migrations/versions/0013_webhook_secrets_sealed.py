"""Webhook secrets encrypted at rest: the secret columns widen to hold a Fernet token ("sealed:" + token,
services/notifications/channels/config.py) and every plain secret already stored is sealed with the
configured key (CAREPATH_ENCRYPTION_KEYS, or the key derived from CAREPATH_SECRET_KEY). Downgrade leaves the
sealed values (the old code could not sign with them: restore from a backup instead).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 03:15:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

from shared import encryption
from shared.settings import get_settings


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SEALED = "sealed:"


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoint") as batch:
        batch.alter_column("secret", type_=sqlmodel.sql.sqltypes.AutoString(length=400), existing_nullable=False)
        batch.alter_column("previous_secret", type_=sqlmodel.sql.sqltypes.AutoString(length=400), existing_nullable=True)
    bind = op.get_bind()
    settings = get_settings()
    rows = bind.execute(sa.text("SELECT id, secret, previous_secret FROM webhook_endpoint")).all()
    for row_id, secret, previous in rows:
        sealed = {
            name: SEALED + encryption.encrypt(settings, value)
            for name, value in (("secret", secret), ("previous_secret", previous))
            if value and not value.startswith(SEALED)
        }
        if sealed:
            assignments = ", ".join(f"{name} = :{name}" for name in sealed)
            bind.execute(sa.text(f"UPDATE webhook_endpoint SET {assignments} WHERE id = :id"), {**sealed, "id": row_id})


def downgrade() -> None:
    pass
