"""residents.phone_invalid: why a resident's phone number was found dead (null while usable)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('residents') as batch:
        batch.add_column(sa.Column('phone_invalid', sa.String(200)))


def downgrade():
    with op.batch_alter_table('residents') as batch:
        batch.drop_column('phone_invalid')
