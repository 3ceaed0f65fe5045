"""The database tables, in SQLAlchemy Core.

Core rather than the ORM because the hot paths (planning a million deliveries,
claiming batches, moving statuses) are bulk statements; the views read rows.
Migrations in ``gateway/store/migrations`` are generated from this metadata.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        MetaData, PrimaryKeyConstraint, SmallInteger, String, Table, Text,
                        UniqueConstraint, text)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

areas = Table(
    "areas", metadata,
    Column("code", String(12), primary_key=True),
    Column("name", String(100), nullable=False),
    # The languages its loudspeakers speak, in order, as canonical tags separated by spaces
    # ("zh yue"); NULL: as the area above it (migration 0012, gateway.store.speakers).
    Column("spoken_languages", String(64)),
)

residents = Table(
    "residents", metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("phone", String(20)),
    Column("wechat_openid", String(64)),
    Column("area_code", String(12), nullable=False),
    Column("birth_year", SmallInteger),
    Column("visually_impaired", Boolean, nullable=False, default=False),
    Column("hearing_impaired", Boolean, nullable=False, default=False),
    Column("has_smartphone", Boolean, nullable=False, default=True),
    # Canonical language tags (messages.languages): what they read (SMS, WeChat) and what
    # calls speak to them (migration 0010).
    Column("language", String(8), nullable=False, default="zh"),
    Column("spoken_language", String(8), nullable=False, default="zh", server_default="zh"),
    Column("opt_out", String(64), nullable=False, default=""),
    Column("test_audience", Boolean, nullable=False, default=False),
    # Why the phone number was found dead (Twilio said invalid); null while it is usable.
    # Set by gateway.store.roster.mark_phone_invalid, cleared when the phone is edited.
    Column("phone_invalid", String(200)),
    # When a roster import that replaced the area's roster no longer listed them; null while
    # on the roster. Planning and the preview skip retired residents (migration 0009).
    Column("retired_at", DateTime(timezone=True)),
    # Registered themselves (/join) and not yet approved by an admin: reached only by SMS,
    # only for extreme notices, their needs unused (audiences.policy.channels_for; 0014).
    Column("pending_review", Boolean, nullable=False, default=False, server_default=text("false")),
    # The grid (网格) they live in, a code in ``grids``; null: none given (migration 0011).
    Column("grid", String(15)),
    # Why a grid worker found their roster data wrong (moved, wrong number); null: nothing to
    # review. Cleared by an edit or a roster import that lists them (gateway.store.roster).
    Column("review_note", String(300)),
    Index("ix_residents_area_code_id", "area_code", "id"),
    Index("ix_residents_grid", "grid"),
    Index("ix_residents_phone", "phone"),
    Index("ix_residents_wechat_openid", "wechat_openid"),
)

# Grids: areas below a village, each with grid workers (docs/grid-workers.md). A grid's code is
# its village's 12-digit code and a 3-digit suffix (audiences.areas.normalize_grid).
grids = Table(
    "grids", metadata,
    Column("code", String(15), primary_key=True),
    Column("name", String(100), nullable=False),
)

grid_workers = Table(
    "grid_workers", metadata,
    Column("grid_code", String(15), ForeignKey("grids.code", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("grid_code", "user_id"),
    Index("ix_grid_workers_user_id", "user_id"),
)

# Every tap a grid worker made on a resident's door for a notice, kept once per tap id (the
# phone makes the id, so a tap sent twice is recorded once). "told" also writes an in_person
# delivery through the ledger; the others are attempts.
grid_visits = Table(
    "grid_visits", metadata,
    Column("id", Integer, primary_key=True),
    Column("tap_id", String(64), nullable=False, unique=True),
    Column("announcement_id", Integer, ForeignKey("announcements.id"), nullable=False),
    Column("resident_id", BigInteger, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("note", String(300), nullable=False, default=""),
    Column("tapped_at", DateTime(timezone=True)),  # on the phone, when it was offline
    Column("at", DateTime(timezone=True), nullable=False),  # recorded
    Index("ix_grid_visits_announcement_resident", "announcement_id", "resident_id"),
)

# One row per (notice, grid, grid worker) nudged by SMS to visit the people left: written
# before the SMS goes, so a second pass or host never nudges twice (migration 0017).
grid_nudges = Table(
    "grid_nudges", metadata,
    Column("announcement_id", Integer, ForeignKey("announcements.id", ondelete="CASCADE"),
           nullable=False),
    Column("grid_code", String(15), ForeignKey("grids.code", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("announcement_id", "grid_code", "user_id"),
)

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", String(64), nullable=False, unique=True),
    Column("area_code", String(12), nullable=False, index=True),
    Column("test_device", Boolean, nullable=False, default=False),
    Column("online", Boolean),
    Column("last_seen", DateTime(timezone=True)),
    # Set by `speakers add` / `speakers rekey`; NULL for a device registered before 0007,
    # which can neither log in to the embedded broker nor have its acks taken until rekeyed.
    Column("mqtt_password_hash", String(64)),  # SHA-256 hex of its broker password
    Column("ack_public_key", String(64)),  # base64 Ed25519 public key its acks verify with
    Column("spoken_languages", String(64)),  # as areas.spoken_languages; NULL: its area's
)

group_robots = Table(
    "group_robots", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("area_code", String(12), nullable=False, index=True),
    Column("robot_key", String(100), nullable=False, unique=True),  # a secret: the webhook key
)

# Broadcasters and partner systems a notice is POSTed to, signed with their shared secret
# (channels/broadcast.py, docs/interop.md); kind tv/radio/platform gets the GB/T 35965.1
# document, webhook a JSON body. Their pull feed takes the token whose SHA-256 is kept (0015).
destinations = Table(
    "destinations", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(12), nullable=False),
    Column("area_code", String(12), nullable=False, index=True),
    Column("url", String(500), nullable=False),
    Column("secret", String(128), nullable=False),  # a secret: signs every request
    Column("feed_token_hash", String(64), nullable=False, unique=True),
    Column("test_destination", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256)),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Bumped at logout: a session cookie made before it is refused from then on.
    Column("session_generation", Integer, nullable=False, default=0, server_default="0"),
    # A grid worker's mobile, where their nudges go (migration 0017); null: not nudged.
    Column("phone", String(20)),
)

# Failed console logins per (name typed, client address), whether or not the name exists.
login_failures = Table(
    "login_failures", metadata,
    Column("name", String(64), primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

announcements = Table(
    "announcements", metadata,
    Column("id", Integer, primary_key=True),
    Column("identifier", String(100), nullable=False, unique=True),
    Column("sender", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("status", String(10), nullable=False),
    Column("msg_type", String(10), nullable=False),
    Column("references", Text),
    Column("supersedes_id", Integer, ForeignKey("announcements.id")),
    Column("category", String(12), nullable=False),
    Column("event", String(100), nullable=False, default=""),
    Column("urgency", String(12), nullable=False),
    Column("severity", String(12), nullable=False),
    Column("certainty", String(12), nullable=False),
    Column("headline", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("instruction", Text, nullable=False, default=""),
    Column("language", String(8), nullable=False),
    Column("areas", Text, nullable=False),       # JSON list of area codes
    Column("channels", Text, nullable=False),    # JSON list of channel names
    Column("expires", DateTime(timezone=True)),
    Column("author_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("approver_id", Integer, ForeignKey("users.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("decision_note", Text),
    # Where planning got to (JSON), committed with each chunk, so a crashed plan resumes.
    Column("plan_cursor", Text),
)

# An announcement's texts in languages other than its own (announcements.language).
announcement_texts = Table(
    "announcement_texts", metadata,
    Column("announcement_id", Integer, ForeignKey("announcements.id", ondelete="CASCADE"),
           nullable=False),
    Column("language", String(8), nullable=False),
    Column("headline", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("instruction", Text, nullable=False, default=""),
    Column("event", String(100), nullable=False, default=""),
    PrimaryKeyConstraint("announcement_id", "language"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", BigId, primary_key=True),
    Column("announcement_id", Integer, nullable=False),
    Column("channel", String(12), nullable=False),
    Column("recipient_id", BigInteger, nullable=False),  # a resident's id, or a device's
    Column("address", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", SmallInteger, nullable=False, default=0),
    Column("provider_id", String(64)),
    Column("last_error", String(500)),
    Column("updated_at", DateTime(timezone=True)),
    # While ``sending``: the worker holding the row, and until when (it renews the lease).
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    # Times this row was sent again after a worker died not knowing whether it went out.
    Column("unknown_outcomes", SmallInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("announcement_id", "channel", "recipient_id",
                     name="uq_deliveries_announcement_channel_recipient"),
    Index("ix_deliveries_batch", "announcement_id", "channel", "batch"),
    # Only failed rows: the console lists them on every poll, and an index of
    # every status would cost each of millions of status changes a write.
    Index("ix_deliveries_failed", "announcement_id",
          sqlite_where=text("status = 'failed'"), postgresql_where=text("status = 'failed'")),
    # Only rows being sent: the reconciler looks for expired leases every minute.
    Index("ix_deliveries_sending", "lease_until",
          sqlite_where=text("status = 'sending'"), postgresql_where=text("status = 'sending'")),
    # WeChat's delivery reports name the message by its MsgID alone (the provider id).
    Index("ix_deliveries_wechat_provider_id", "provider_id",
          sqlite_where=text("channel = 'wechat'"), postgresql_where=text("channel = 'wechat'")),
)

delivery_counts = Table(
    "delivery_counts", metadata,
    Column("announcement_id", Integer, primary_key=True),
    Column("channel", String(12), primary_key=True),
    Column("status", String(10), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
)

# Who has been reached (a personal channel delivered or confirmed): the primary key decides
# who is first, so the running counts in delivery_counts (channel "*") stay exact.
# What reached and confirmed mean: gateway/delivery/reach.py.
reached = Table(
    "reached", metadata,
    Column("announcement_id", Integer, primary_key=True),
    Column("recipient_id", BigInteger, primary_key=True),
    # The personal channel that reached them first, and when; when they confirmed (or null).
    Column("channel", String(12)),
    Column("reached_at", DateTime(timezone=True)),
    Column("confirmed_at", DateTime(timezone=True)),
)

# What the retention pass kept of a notice whose delivery details it deleted (migration 0013):
# the figures that were counted from rows naming residents. Written by the ledger alone.
retained_figures = Table(
    "retained_figures", metadata,
    Column("announcement_id", Integer, ForeignKey("announcements.id"), primary_key=True),
    Column("anonymised_at", DateTime(timezone=True), nullable=False),
    Column("not_reached", BigInteger, nullable=False),
    Column("unconfirmed", BigInteger, nullable=False),
    Column("disclosure", Text, nullable=False),  # the disclosure report, as JSON
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
)

inbound_messages = Table(
    "inbound_messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("channel", String(12), nullable=False),
    Column("address", String(64), nullable=False),
    Column("resident_id", BigInteger),
    Column("announcement_id", Integer),
    Column("intent", String(12), nullable=False),
    Column("body", Text, nullable=False),
)

# What a resident gave on the self-registration page (/join), kept with the consents they gave
# (purpose -> when, JSON) while an admin reviews it, and after as the record of those consents.
# Needs (JSON list) are sensitive: written to the resident only at approval, with consent.
self_registrations = Table(
    "self_registrations", metadata,
    Column("id", Integer, primary_key=True),
    Column("area_code", String(12), nullable=False),
    Column("resident_id", BigInteger),  # the roster row it feeds (pending, then approved)
    Column("name", String(100), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("language", String(8), nullable=False),
    Column("uses_wechat", Boolean, nullable=False),
    Column("needs", Text, nullable=False),
    Column("consents", Text, nullable=False),
    Column("status", String(10), nullable=False),  # pending, approved, rejected
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(64)),
    Index("ix_self_registrations_status", "status", "id"),
    Index("ix_self_registrations_phone", "phone"),
)

# Calls to the notice hotline, one row per (call, notice the caller began to hear): how many
# heard each notice that way (gateway/store/hotline.py, the one writer; migration 0016).
# A caller on the roster is named by resident id; no other caller's number is kept.
hotline_calls = Table(
    "hotline_calls", metadata,
    Column("id", BigId, primary_key=True),
    Column("call_sid", String(64), nullable=False),
    Column("announcement_id", Integer, ForeignKey("announcements.id", ondelete="CASCADE"),
           nullable=False),
    Column("area_code", String(12), nullable=False),  # the area the caller listened for
    Column("resident_id", BigInteger),
    Column("heard_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),  # the caller pressed 1
    UniqueConstraint("call_sid", "announcement_id", name="uq_hotline_calls_call_announcement"),
    Index("ix_hotline_calls_announcement_id", "announcement_id"),
)
