"""Self-registration by QR code (#21): ``residents.pending_review`` marks a resident who
registered themselves and whom no admin has approved yet (reached only by SMS, only for extreme
notices); ``self_registrations`` keeps what they gave, needs apart, and each consent given.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('residents') as batch:
        batch.add_column(sa.Column('pending_review', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        'self_registrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('area_code', sa.String(12), nullable=False),
        sa.Column('resident_id', sa.BigInteger()),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('phone', sa.String(20), nullable=False),
        sa.Column('language', sa.String(8), nullable=False),
        sa.Column('uses_wechat', sa.Boolean(), nullable=False),
        sa.Column('needs', sa.Text(), nullable=False),
        sa.Column('consents', sa.Text(), nullable=False),
        sa.Column('status', sa.String(10), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True)),
        sa.Column('decided_by', sa.String(64)),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_self_registrations')),
    )
    op.create_index('ix_self_registrations_status', 'self_registrations', ['status', 'id'])
    op.create_index('ix_self_registrations_phone', 'self_registrations', ['phone'])


def downgrade():
    op.drop_index('ix_self_registrations_phone', table_name='self_registrations')
    op.drop_index('ix_self_registrations_status', table_name='self_registrations')
    op.drop_table('self_registrations')
    with op.batch_alter_table('residents') as batch:
        batch.drop_column('pending_review')
