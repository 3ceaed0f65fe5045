"""Grids and grid workers (#18): the ``grids`` registry (a village's 12-digit code and a
3-digit suffix), ``grid_workers`` (user ↔ grid), ``grid_visits`` (every tap a grid worker
made, once per tap id), and on residents their ``grid`` and a ``review_note`` (a grid worker
found the roster data wrong).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'grids',
        sa.Column('code', sa.String(15), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint('code', name='pk_grids'))
    op.create_table(
        'grid_workers',
        sa.Column('grid_code', sa.String(15), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['grid_code'], ['grids.code'], ondelete='CASCADE',
                                name='fk_grid_workers_grid_code_grids'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name='fk_grid_workers_user_id_users'),
        sa.PrimaryKeyConstraint('grid_code', 'user_id', name='pk_grid_workers'))
    op.create_index('ix_grid_workers_user_id', 'grid_workers', ['user_id'])
    op.create_table(
        'grid_visits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tap_id', sa.String(64), nullable=False),
        sa.Column('announcement_id', sa.Integer(), nullable=False),
        sa.Column('resident_id', sa.BigInteger(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(12), nullable=False),
        sa.Column('note', sa.String(300), nullable=False),
        sa.Column('tapped_at', sa.DateTime(timezone=True)),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'],
                                name='fk_grid_visits_announcement_id_announcements'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_grid_visits_user_id_users'),
        sa.PrimaryKeyConstraint('id', name='pk_grid_visits'),
        sa.UniqueConstraint('tap_id', name='uq_grid_visits_tap_id'))
    op.create_index('ix_grid_visits_announcement_resident', 'grid_visits',
                    ['announcement_id', 'resident_id'])
    with op.batch_alter_table('residents') as batch:
        batch.add_column(sa.Column('grid', sa.String(15)))
        batch.add_column(sa.Column('review_note', sa.String(300)))
    op.create_index('ix_residents_grid', 'residents', ['grid'])


def downgrade():
    op.drop_index('ix_residents_grid', table_name='residents')
    with op.batch_alter_table('residents') as batch:
        batch.drop_column('review_note')
        batch.drop_column('grid')
    op.drop_index('ix_grid_visits_announcement_resident', table_name='grid_visits')
    op.drop_table('grid_visits')
    op.drop_index('ix_grid_workers_user_id', table_name='grid_workers')
    op.drop_table('grid_workers')
    op.drop_table('grids')
