"""The channels service's tables (the schema comes from the migrations)."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shared.db import UTCDateTime

metadata = MetaData()

# One external system: a WeChat official account, a phone system, a web or Open311
# client, a unit's own system. Only the SHA-256 of its API key is kept.
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("channel", String(20)),
    Column("unit_id", String(40)),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String(64)),
    # what a ticket filed by the adapter carries when the message says nothing of it
    Column("default_matter_code", String(32)),
    Column("default_district", String(6)),
    Column("default_type", String(20)),
    # WeChat official account (公众号) server configuration
    Column("wechat_app_id", String(64)),
    Column("wechat_token", String(64)),
    Column("wechat_aes_key", String(43)),
)

# Tickets this service filed for an outside system, and where their requester is reached.
channel_tickets = Table(
    "channel_tickets",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("openid", String(64)),
    Column("status", String(20), nullable=False),  # open | completed
    Column("registered_at", UTCDateTime, nullable=False),
    # channels_0002: the requester's number when the channel knows it (CTI caller, WeChat text)
    Column("phone", String(20)),
)

wechat_messages = Table(
    "wechat_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    # WeChat retries a message it got no answer for: MsgId, or sender + CreateTime for events
    Column("msg_key", String(100), nullable=False),
    Column("openid", String(64), nullable=False),
    Column("msg_type", String(20), nullable=False),
    Column("content", Text),
    Column("received_at", UTCDateTime, nullable=False),
    Column("kind", String(20), nullable=False),  # new_ticket | follow_up | event | query
    Column("status", String(20), nullable=False),  # pending | done | failed
    Column("ticket_id", String(32)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    UniqueConstraint("account_id", "msg_key", name="uq_wechat_messages_key"),
)

calls = Table(
    "calls",
    metadata,
    Column("account_id", String(36), nullable=False),
    Column("call_id", String(64), nullable=False),
    Column("caller_number", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime),
    Column("agent", String(64)),
    Column("ended_at", UTCDateTime),
    Column("ticket_id", String(32)),
    Column("rating", String(24)),
    Column("rated_at", UTCDateTime),
    PrimaryKeyConstraint("account_id", "call_id"),
)

# Art 28, 29: who looked up which caller's earlier tickets, and when.
caller_history_reads = Table(
    "caller_history_reads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("call_id", String(64), nullable=False),
    Column("reader", String(64), nullable=False),
    Column("reader_role", String(20), nullable=False),
    Column("read_at", UTCDateTime, nullable=False),
    Column("tickets", JSON, nullable=False),
)

# Which units a ticket is (or was) with: a unit's subscription gets only these tickets.
ticket_units = Table(
    "ticket_units",
    metadata,
    Column("ticket_id", String(32), nullable=False),
    Column("unit_id", String(40), nullable=False),
    PrimaryKeyConstraint("ticket_id", "unit_id"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("unit_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("subscription_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("ticket_id", String(32)),
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("dead_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    UniqueConstraint("subscription_id", "event_id", name="uq_deliveries_event"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
)


# channels_0002 — notifications to citizens and units (SMS, WeChat template messages);
# one row per event, medium and recipient: never sent twice.
notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("ticket_id", String(32)),
    Column("purpose", String(20), nullable=False),
    Column("medium", String(10), nullable=False),  # sms | wechat
    Column("recipient", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("params", JSON, nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("status", String(20), nullable=False),  # pending | sent | failed | skipped
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    UniqueConstraint("event_id", "medium", "recipient", name="uq_notifications_once"),
)

unit_contacts = Table(
    "unit_contacts",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("phones", JSON, nullable=False),
    Column("wechat_openids", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# Art 4: the work phones of a unit's named responsible staff (catalog.unit_staff_published
# from dispatch); they are told of the unit's work orders beside the contacts above.
unit_staff_phones = Table(
    "unit_staff_phones",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("phones", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

opt_outs = Table(
    "opt_outs",
    metadata,
    Column("medium", String(10), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("opted_out_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("medium", "recipient"),
)


# channels_0003 — Open311 GeoReport v2: the catalog as services, and the requests filed
# through it with what the spec shows of them.
matters = Table(
    "matters",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
)

units = Table(
    "units",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
)

open311_requests = Table(
    "open311_requests",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("token", String(36), nullable=False, unique=True),
    Column("account_id", String(36), nullable=False),
    Column("service_code", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("address", String(200)),
    Column("lat", String(20)),
    Column("long", String(20)),
    Column("media_url", String(2000)),
    Column("status", String(10), nullable=False),  # open | closed
    Column("status_notes", Text),
    Column("agency_responsible", String(100)),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expected_at", UTCDateTime),
)
