"""residents.retired_at: when a roster import with --replace-area found a resident no longer
on their area's roster (null while they are on it). Retired residents keep their row, so the
deliveries that name them stay whole; planning and the preview skip them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('residents') as batch:
        batch.add_column(sa.Column('retired_at', sa.DateTime(timezone=True)))
    op.create_index('ix_residents_wechat_openid', 'residents', ['wechat_openid'])


def downgrade():
    op.drop_index('ix_residents_wechat_openid', table_name='residents')
    with op.batch_alter_table('residents') as batch:
        batch.drop_column('retired_at')
