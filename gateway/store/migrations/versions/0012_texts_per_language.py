"""areas.spoken_languages and devices.spoken_languages: the languages a village's (or one
device's) loudspeakers speak, in the order they play them, as canonical tags separated by
spaces ("zh yue"). NULL: not set, so a device takes its area's, the nearest set of its
village, town or county, else the announcement's own language, which is what loudspeakers
played until now.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    for table in ('areas', 'devices'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('spoken_languages', sa.String(64), nullable=True))


def downgrade():
    for table in ('areas', 'devices'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('spoken_languages')
