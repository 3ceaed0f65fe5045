"""hotline_calls: one row per call to the notice hotline and notice the caller began to hear,
so the progress page and the status API count how many heard each notice by telephone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        'hotline_calls',
        sa.Column('id', BigId, nullable=False),
        sa.Column('call_sid', sa.String(64), nullable=False),
        sa.Column('announcement_id', sa.Integer,
                  sa.ForeignKey('announcements.id', ondelete='CASCADE',
                                name='fk_hotline_calls_announcement_id_announcements'),
                  nullable=False),
        sa.Column('area_code', sa.String(12), nullable=False),
        sa.Column('resident_id', sa.BigInteger),
        sa.Column('heard_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint('id', name='pk_hotline_calls'),
        sa.UniqueConstraint('call_sid', 'announcement_id',
                            name='uq_hotline_calls_call_announcement'),
    )
    op.create_index('ix_hotline_calls_announcement_id', 'hotline_calls', ['announcement_id'])


def downgrade():
    op.drop_index('ix_hotline_calls_announcement_id', table_name='hotline_calls')
    op.drop_table('hotline_calls')
