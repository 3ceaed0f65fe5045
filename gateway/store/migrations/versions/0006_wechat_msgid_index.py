"""index of WeChat deliveries by provider id (partial: only channel 'wechat')

WeChat's delivery report (TEMPLATESENDJOBFINISH) names the message by its MsgID alone,
so the webhook finds the delivery by provider id; one report per follower must not scan
the ledger.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

WECHAT = sa.text("channel = 'wechat'")


def upgrade():
    op.create_index('ix_deliveries_wechat_provider_id', 'deliveries', ['provider_id'],
                    unique=False, sqlite_where=WECHAT, postgresql_where=WECHAT)


def downgrade():
    op.drop_index('ix_deliveries_wechat_provider_id', table_name='deliveries')
