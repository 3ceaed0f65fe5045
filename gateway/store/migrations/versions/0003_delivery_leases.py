"""delivery leases: who is sending a row and until when; re-sends after an unknown outcome

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SENDING = sa.text("status = 'sending'")


def upgrade():
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('lease_owner', sa.String(64)))
        batch.add_column(sa.Column('lease_until', sa.DateTime(timezone=True)))
        batch.add_column(sa.Column('unknown_outcomes', sa.SmallInteger(), nullable=False,
                                   server_default='0'))
    op.create_index('ix_deliveries_sending', 'deliveries', ['lease_until'], unique=False,
                    sqlite_where=SENDING, postgresql_where=SENDING)


def downgrade():
    op.drop_index('ix_deliveries_sending', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('unknown_outcomes')
        batch.drop_column('lease_until')
        batch.drop_column('lease_owner')
