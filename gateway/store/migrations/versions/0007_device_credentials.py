"""loudspeaker devices: the SHA-256 of each device's broker password and the public half of
its ack key (both made by `speakers add` or `speakers rekey`; NULL for devices registered
before, whose acks are refused until they are rekeyed)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('mqtt_password_hash', sa.String(64)))
        batch.add_column(sa.Column('ack_public_key', sa.String(64)))


def downgrade():
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('ack_public_key')
        batch.drop_column('mqtt_password_hash')
