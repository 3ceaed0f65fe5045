"""console logins: a session generation per user (logout ends sessions on the server) and
failed logins counted per (name, client address)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_generation', sa.Integer(), nullable=False,
                                   server_default='0'))
    op.create_table(
        'login_failures',
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('address', sa.String(64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True)),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', 'address'),
    )


def downgrade():
    op.drop_table('login_failures')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_generation')
