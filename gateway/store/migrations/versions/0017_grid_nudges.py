"""Grid-worker nudges (#18, item 5): a grid worker's ``phone`` on ``users`` (where the nudge
SMS goes), and ``grid_nudges``, one row per (notice, grid, worker) nudged — the marker that
keeps a second reconciler pass or a second host from nudging twice, and the time the office's
grid report shows.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 15:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('phone', sa.String(20)))
    op.create_table(
        'grid_nudges',
        sa.Column('announcement_id', sa.Integer(), nullable=False),
        sa.Column('grid_code', sa.String(15), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], ondelete='CASCADE',
                                name='fk_grid_nudges_announcement_id_announcements'),
        sa.ForeignKeyConstraint(['grid_code'], ['grids.code'], ondelete='CASCADE',
                                name='fk_grid_nudges_grid_code_grids'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name='fk_grid_nudges_user_id_users'),
        sa.PrimaryKeyConstraint('announcement_id', 'grid_code', 'user_id', name='pk_grid_nudges'))


def downgrade():
    op.drop_table('grid_nudges')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('phone')
