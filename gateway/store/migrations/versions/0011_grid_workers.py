"""Reserved for the grid workers change, made in this session; no change to the schema yet.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:30:00
"""


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
