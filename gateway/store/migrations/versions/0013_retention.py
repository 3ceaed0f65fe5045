"""retained_figures: what the retention pass (gateway/delivery/retention.py) kept of a notice
whose delivery details it deleted: the residents not reached and reached but unconfirmed, and
the disclosure report, which can no longer be counted from rows that no longer name anyone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'retained_figures',
        sa.Column('announcement_id', sa.Integer(), nullable=False),
        sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('not_reached', sa.BigInteger(), nullable=False),
        sa.Column('unconfirmed', sa.BigInteger(), nullable=False),
        sa.Column('disclosure', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'],
                                name=op.f('fk_retained_figures_announcement_id_announcements')),
        sa.PrimaryKeyConstraint('announcement_id', name=op.f('pk_retained_figures')))


def downgrade():
    op.drop_table('retained_figures')
