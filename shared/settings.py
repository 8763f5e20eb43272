"""Settings from environment variables (prefix ``HOTLINE_``), one class for every process."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.sealing import DEV_INDEX_KEY, KeyRing, key_ring_problems, parse_key_ring

if TYPE_CHECKING:
    from shared.bus import GroupTiming

SERVICES = ("intake", "dispatch", "sla", "knowledge", "evaluation", "channels")
DEFAULT_PORTS = {
    "gateway": 8000,
    "intake": 8001,
    "dispatch": 8002,
    "sla": 8003,
    "knowledge": 8004,
    "evaluation": 8005,
    "channels": 8006,
}
# Every secret that appears in this repository (defaults, compose fallbacks, docs, tests)
# is public; tests/unit/security/test_production_settings.py scans the repository so that
# none is missing here. Production refuses them, and any placeholder-looking value.
KNOWN_SECRETS = frozenset(
    {
        "dev-internal-secret-change-me-32bytes!",
        "dev-jwt-secret-change-me-at-least-32-bytes",
        "dev-internal-secret-change-me",
        "dev-jwt-secret-change-me",
        "dev-channels-secret-change-me-32-bytes!",
    }
)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "secret", "example", "password", "demo")
MIN_SECRET_BYTES = 32
MAX_TOKEN_MINUTES = 24 * 60  # a sign-in session (refresh tokens)
MAX_ACCESS_MINUTES = 30  # an access token


class Settings(BaseSettings):
    """Every knob of the platform. Policy values (deadlines, thresholds) are not here:
    they are versioned policy settings owned by the services."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    # sqlite+aiosqlite:///./var/hotline.db  → one file per service (hotline-intake.db, ...)
    # postgresql+asyncpg://user:pw@host/db  → one schema per service in that database
    db_url: str = "sqlite+aiosqlite:///./var/hotline.db"
    db_pool_size: int = 10
    # PostgreSQL's planner cost of a page read out of order, set on the services' own
    # connections (shared/db.py ``Database``); 0 leaves the server's (4 by default, made
    # for spinning disks): see ``shared.db.RANDOM_PAGE_COST``
    db_random_page_cost: float | None = 1.1
    # memory:// (embedded log in memory) · log:///path/bus.db (embedded log in a file) ·
    # kafka://host:port[,host:port]
    bus_url: str = "memory://"
    topic_prefix: str = ""
    kafka_partitions: int = 3
    # HMAC key the gateway signs caller identities with; services verify it.
    service_secret: str = "dev-internal-secret-change-me-32bytes!"
    jwt_secret: str = "dev-jwt-secret-change-me-at-least-32-bytes"
    # access tokens (at most 30 min) and the sign-in session their refresh tokens keep alive
    jwt_ttl_minutes: int = 30
    refresh_ttl_minutes: int = 12 * 60
    session_check_seconds: float = 30.0  # logout/revocation/disabling takes effect within
    password_hash_memory_kib: int = 65536  # argon2id memory cost
    # abuse limits (gateway/throttle.py); memory:// counts per gateway process
    rate_limit_storage: str = "async+memory://"
    limit_failed_logins_per_user: str = "5/15 minutes"
    limit_failed_logins_per_client: str = "30/15 minutes"
    limit_lookups_per_client: str = "30/hour"
    limit_lookups_per_ticket: str = "10/hour"
    limit_registrations_per_account: str = "120/minute"
    users_file: str = ""
    # request bodies at the gateway (413 above): JSON and other bodies, and uploads
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 32 * 1024 * 1024  # JSON file of gateway users; empty → the demo users
    host: str = "127.0.0.1"
    port: int = 0  # 0 → the default port of the process
    # system: real time · controllable: real time plus an offset that /internal/clock moves
    clock: Literal["system", "controllable"] = "system"
    clock_offset_seconds: float = 0.0  # controllable clock only: where it starts
    log_level: str = "INFO"
    log_json: bool = True
    seed_demo: bool = True
    relay_batch_size: int = 2000
    # consumers: events per batch (one transaction), and how often one event's handler is
    # tried before the event is parked as a dead letter
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 3
    # Kafka consumers: while busy, a fetch waits at the broker for this many bytes or this
    # long, so a group takes many events per fetch and per transaction instead of a few (up
    # to 0.1 s per hop under load: 179 tickets/s against 115 with 20 ms, docs/events.md);
    # handled positions are committed at most this often (and when partitions move or the
    # consumer stops; what a crash forgets, the inbox drops): each commit is a request and a
    # write to the broker's offsets topic, six groups' a second at 1 s
    kafka_fetch_wait_ms: int = 200
    kafka_fetch_min_bytes: int = 256 * 1024
    kafka_commit_seconds: float = 5.0
    # Kafka consumer groups: how soon a change of members is noticed (shared.bus.GroupTiming):
    # a member that stopped is taken for dead after the session timeout, the others hear
    # of a rebalance at their next heartbeat, and a rebalance waits for a member's batch in
    # hand at most the rebalance timeout
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_ms: int = 1000
    kafka_rebalance_timeout_ms: int = 10_000
    # embedded mode's durable log; empty → beside the SQLite files (var/hotline-bus.db)
    bus_log_path: str = ""
    relay_poll_seconds: float = 0.5
    # bearer token for the gateway's /metrics (its port is public); empty: no such page.
    # Each service serves /metrics on its own (internal) port without one.
    metrics_token: str = ""
    # a woken relay waits this long for more commits and sends them as one batch (0: none)
    relay_gather_ms: float = 5.0
    # a busy relay's rounds (a produce request and a transaction each) begin at least this
    # far apart; a commit after a quiet spell waits only relay_gather_ms (0: no pace).
    # bench/relay_pace.py, 1,000 events a second: 91 -> 10 rounds a second at 100, ~2.3 ms
    # of the machine a round saved, events waiting 9 -> 55 ms (p50). Off: in e2e at 100 the
    # pipeline's latency rose ~80 ms (p50 277 -> 358) and end to end/s fell 1,319 -> 1,282
    relay_pace_ms: float = 0.0
    # sent outbox rows older than this move to the event history (timelines read it), so
    # the outbox holds only recent rows; checked every outbox_prune_seconds (0: never)
    outbox_retention_seconds: float = 3600.0
    outbox_prune_seconds: float = 60.0
    # handled event ids (the inbox) of events made longer ago than this are forgotten at the
    # same interval: an event is delivered again only from the last committed position, and
    # Kafka keeps an idle group's committed positions 7 days (offsets.retention.minutes)
    inbox_retention_seconds: float = 7 * 24 * 3600.0
    # how long a registration's Idempotency-Key is remembered (intake)
    idempotency_retention_hours: float = 24.0
    # intake on PostgreSQL writes concurrent registrations together (group commit): at most
    # this many per statement, and this many such writes at once; 0 writes one by one. One
    # at a time: the registrations arriving meanwhile wait for it and go together (the
    # statement's fixed cost, ~0.2 ms of PostgreSQL, shared by ~twice as many as with 2)
    intake_batch_size: int = 64
    intake_batch_in_flight: int = 1
    # intake seals requester data at rest (shared/sealing.py): ``id:hex,id:hex`` (32 bytes
    # each), the id new values are sealed under, and the blind index key (phone lookups).
    # Empty outside production: the public development ring.
    requester_keys: str = ""
    # replays across a service's instances: state-changing requests' nonces in its database
    # (shared/replays.py); empty: on PostgreSQL, off on SQLite (one process per service)
    shared_nonces: bool | None = None
    requester_key_id: str = ""
    requester_index_key: str = ""
    intake_url: str = "http://127.0.0.1:8001"
    dispatch_url: str = "http://127.0.0.1:8002"
    sla_url: str = "http://127.0.0.1:8003"
    knowledge_url: str = "http://127.0.0.1:8004"
    evaluation_url: str = "http://127.0.0.1:8005"
    channels_url: str = "http://127.0.0.1:8006"
    # A Unix socket per service, for processes on one machine: the service listens on it
    # besides its port, and the gateway reaches the service through it instead of the URL's
    # host and port (the kernel's loopback TCP was a tenth of the gateway's CPU). Empty: TCP
    intake_uds: str = ""
    dispatch_uds: str = ""
    sla_uds: str = ""
    knowledge_uds: str = ""
    evaluation_uds: str = ""
    channels_uds: str = ""
    # Channels (docs/integrations.md). The key every account's signing secret and every
    # webhook secret is derived from; refused in production while it is the default.
    channels_secret: str = "dev-channels-secret-change-me-32-bytes!"
    # The citizen's page of a ticket (links in WeChat replies and notifications).
    citizen_ticket_url: str = "http://127.0.0.1:8000/track?ticket_id={ticket_id}"
    # How long the gateway trusts a verified API key before asking channels again: a
    # revoked key stops working within this time.
    api_key_cache_seconds: float = 30.0
    # Outgoing deliveries (webhooks, notifications): first retry after the base, doubling
    # up to the ceiling, dead-lettered once the window since the event has passed.
    delivery_backoff_seconds: float = 30.0
    delivery_backoff_max_seconds: float = 3600.0
    delivery_window_hours: float = 24.0
    delivery_timeout_seconds: float = 10.0
    # An outside system (SMS gateway, WeChat, a webhook endpoint) that could not be reached
    # this many tries in a row is not called for the cool-down; then one probe decides.
    delivery_circuit_failures: int = 5
    delivery_circuit_cooldown_seconds: float = 60.0
    # WeChat allows 5 s for a reply; registration must fit well inside or go on later.
    wechat_register_seconds: float = 3.0
    # Notifications (docs/integrations.md): each provider is off while its URL is empty.
    sms_url: str = ""  # the SMS gateway's send endpoint (JSON request, see the docs)
    sms_sign_name: str = "天津12345"  # 短信签名
    # purpose → the provider's template code (registered, accepted, replied, revisit,
    # work_order, warning, overdue); the Chinese text is sent alongside
    sms_templates: dict[str, str] = {}
    # WeChat template messages (模板消息): the send URL (with access_token, or a relay that
    # adds it) and purpose → template_id
    wechat_template_url: str = ""
    wechat_template_ids: dict[str, str] = {}
    notify_quiet_hours: str = "22:00-07:00"  # Shanghai time; non-urgent messages wait
    open311_jurisdiction: str = "tianjin.gov.cn"  # Open311's jurisdiction_id

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if not 1 <= self.jwt_ttl_minutes <= MAX_ACCESS_MINUTES:
            raise ValueError(
                f"HOTLINE_JWT_TTL_MINUTES={self.jwt_ttl_minutes}: set 1..{MAX_ACCESS_MINUTES} "
                "(sessions last longer through refresh tokens: HOTLINE_REFRESH_TTL_MINUTES)"
            )
        if not 0 < self.session_check_seconds <= 30:
            raise ValueError("HOTLINE_SESSION_CHECK_SECONDS: set 1..30")
        for service in SERVICES:
            path = self.service_uds(service)
            if problem := _socket_path_problem(path):
                raise ValueError(f"HOTLINE_{service.upper()}_UDS={path}: {problem}")
        if self.env == "production":
            problems = self.production_problems()
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """What every process refuses in production, each saying what to set."""
        problems = [
            *_secret_problems("HOTLINE_SERVICE_SECRET", self.service_secret),
            *_secret_problems("HOTLINE_JWT_SECRET", self.jwt_secret),
        ]
        if self.service_secret == self.jwt_secret:
            problems.append(
                "HOTLINE_SERVICE_SECRET and HOTLINE_JWT_SECRET are equal: set two different keys"
            )
        if self.clock != "system":
            problems.append("HOTLINE_CLOCK=controllable lets an admin move time: set system")
        if not 1 <= self.refresh_ttl_minutes <= MAX_TOKEN_MINUTES:
            problems.append(
                f"HOTLINE_REFRESH_TTL_MINUTES={self.refresh_ttl_minutes}: set "
                f"1..{MAX_TOKEN_MINUTES}"
            )
        return problems

    def check_gateway_production(self) -> None:
        """The gateway alone knows users: in production it refuses the demo users, whose
        passwords are public."""
        if self.env != "production":
            return
        from pathlib import Path

        demo = Path(__file__).resolve().parent.parent / "gateway" / "demo_users.json"
        if not self.users_file or Path(self.users_file).resolve() == demo:
            raise ValueError(
                "refusing to start in production: the demo users have public passwords; "
                "set HOTLINE_USERS_FILE to your own users"
            )

    def requester_key_ring(self) -> KeyRing:
        """Intake's key ring for requester data; in production only a real one."""
        if not self.requester_keys and self.env != "production":
            return KeyRing.development()
        self.check_intake_production()
        keys = parse_key_ring(self.requester_keys)
        current = self.requester_key_id or (next(iter(keys)) if len(keys) == 1 else "")
        return KeyRing.of(keys, current, self.requester_index_key or DEV_INDEX_KEY)

    def check_intake_production(self) -> None:
        """Intake alone holds requester data: in production it refuses a missing, short or
        published key."""
        if self.env != "production":
            return
        problems = key_ring_problems(
            "HOTLINE_REQUESTER",
            parse_key_ring(self.requester_keys),
            self.requester_key_id,
            self.requester_index_key,
        )
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))

    def service_url(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))

    def service_uds(self, service: str) -> str:
        """The Unix socket ``service`` listens on besides its port; empty: none."""
        return str(getattr(self, f"{service}_uds"))

    def port_for(self, process: str) -> int:
        return self.port or DEFAULT_PORTS[process]

    @property
    def kafka_group_timing(self) -> GroupTiming:
        from shared.bus import GroupTiming

        return GroupTiming(
            session_timeout_ms=self.kafka_session_timeout_ms,
            heartbeat_ms=self.kafka_heartbeat_ms,
            rebalance_timeout_ms=self.kafka_rebalance_timeout_ms,
        )

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")


# sun_path holds 108 bytes on Linux (104 on the BSDs and macOS), the last one a NUL
MAX_SOCKET_PATH_BYTES = 103


def _socket_path_problem(path: str) -> str | None:
    if not path:
        return None
    if not os.path.isabs(path):
        return "give an absolute path (the service and the gateway may start in other directories)"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        return (
            f"{len(os.fsencode(path))} bytes, longer than a Unix socket's path may be "
            f"({MAX_SOCKET_PATH_BYTES}): choose a shorter one"
        )
    return None


def secret_problems(name: str, value: str) -> list[str]:
    """Why ``value`` is no key for production (empty: it is fine)."""
    return _secret_problems(name, value)


def _secret_problems(name: str, value: str) -> list[str]:
    hint = "set it to a random value: openssl rand -hex 32"
    if value in KNOWN_SECRETS:
        return [f"{name} is a development default published in the repository: {hint}"]
    if len(value.encode()) < MIN_SECRET_BYTES:
        return [f"{name} is shorter than {MIN_SECRET_BYTES} bytes: {hint}"]
    if any(word in value.lower() for word in _PLACEHOLDER_WORDS):
        return [f"{name} looks like a placeholder, not a key: {hint}"]
    return []


@lru_cache
def get_settings() -> Settings:
    return Settings()
