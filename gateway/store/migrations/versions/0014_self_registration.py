"""Reserved for the self registration change, made in this session; no change to the schema yet.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:30:00
"""


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
