"""Broadcast destinations (#22): TV stations, traffic radio, the emergency broadcasting
platform and signed webhooks a notice is POSTed to, each under an area with its URL, shared
secret and the SHA-256 of its pull feed's token.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'destinations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('kind', sa.String(12), nullable=False),
        sa.Column('area_code', sa.String(12), nullable=False),
        sa.Column('url', sa.String(500), nullable=False),
        sa.Column('secret', sa.String(128), nullable=False),
        sa.Column('feed_token_hash', sa.String(64), nullable=False),
        sa.Column('test_destination', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_destinations')),
        sa.UniqueConstraint('name', name=op.f('uq_destinations_name')),
        sa.UniqueConstraint('feed_token_hash', name=op.f('uq_destinations_feed_token_hash')),
    )
    op.create_index(op.f('ix_destinations_area_code'), 'destinations', ['area_code'])


def downgrade():
    op.drop_index(op.f('ix_destinations_area_code'), table_name='destinations')
    op.drop_table('destinations')
