"""Reserved for the broadcast destinations change, made in this session; no change to the schema yet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:30:00
"""


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
