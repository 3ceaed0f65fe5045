"""index of failed deliveries (partial: only rows with status 'failed')

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 17:58:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

FAILED = sa.text("status = 'failed'")


def upgrade():
    op.create_index('ix_deliveries_failed', 'deliveries', ['announcement_id'], unique=False,
                    sqlite_where=FAILED, postgresql_where=FAILED)


def downgrade():
    op.drop_index('ix_deliveries_failed', table_name='deliveries')
