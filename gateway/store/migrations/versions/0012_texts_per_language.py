"""Reserved for the texts per language change, made in this session; no change to the schema yet.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:30:00
"""


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
