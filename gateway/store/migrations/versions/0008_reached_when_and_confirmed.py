"""reached: by which channel and when a resident was first reached, and when they confirmed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00

Rows already there are filled in from the ledger: the earliest personal delivery
that reached the resident gives the channel and the time (its last change, the
best the ledger kept), a confirmed one the confirmation time; the running count
of confirmed residents (``delivery_counts`` channel ``*``, status ``confirmed``)
is added for every announcement with any.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

PERSONAL = "('sms', 'voice', 'wechat')"
SAME = ("d.announcement_id = reached.announcement_id AND d.recipient_id = reached.recipient_id "
        f"AND d.channel IN {PERSONAL}")


def upgrade():
    with op.batch_alter_table('reached') as batch:
        batch.add_column(sa.Column('channel', sa.String(12)))
        batch.add_column(sa.Column('reached_at', sa.DateTime(timezone=True)))
        batch.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True)))
    first = (f"SELECT {{column}} FROM deliveries d WHERE {SAME} "
             "AND d.status IN ('delivered', 'confirmed') ORDER BY d.updated_at, d.id LIMIT 1")
    op.execute(f"UPDATE reached SET channel = ({first.format(column='d.channel')}), "
               f"reached_at = ({first.format(column='d.updated_at')})")
    op.execute("UPDATE reached SET confirmed_at = (SELECT MIN(d.updated_at) FROM deliveries d "
               f"WHERE {SAME} AND d.status = 'confirmed') WHERE EXISTS (SELECT 1 FROM deliveries d "
               f"WHERE {SAME} AND d.status = 'confirmed')")
    op.execute("INSERT INTO delivery_counts (announcement_id, channel, status, count) "
               "SELECT announcement_id, '*', 'confirmed', COUNT(*) FROM reached "
               "WHERE confirmed_at IS NOT NULL GROUP BY announcement_id")


def downgrade():
    op.execute("DELETE FROM delivery_counts WHERE channel = '*' AND status = 'confirmed'")
    with op.batch_alter_table('reached') as batch:
        batch.drop_column('confirmed_at')
        batch.drop_column('reached_at')
        batch.drop_column('channel')
