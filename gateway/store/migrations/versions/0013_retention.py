"""Reserved for the retention change, made in this session; no change to the schema yet.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:30:00
"""


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
