"""residents.spoken_language: the language calls speak to a resident, beside ``language``,
the one they read (SMS, WeChat). Filled in with the written language, which is what calls
spoke until now.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('residents') as batch:
        batch.add_column(sa.Column('spoken_language', sa.String(8), nullable=False, server_default='zh'))
    op.execute("UPDATE residents SET spoken_language = language")


def downgrade():
    with op.batch_alter_table('residents') as batch:
        batch.drop_column('spoken_language')
