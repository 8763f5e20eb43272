"""Settings from environment variables (prefix ``HOTLINE_``), one class for every process."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "dispatch", "sla", "knowledge", "evaluation")
DEFAULT_PORTS = {
    "gateway": 8000,
    "intake": 8001,
    "dispatch": 8002,
    "sla": 8003,
    "knowledge": 8004,
    "evaluation": 8005,
}
_DEV_SECRETS = {
    "dev-internal-secret-change-me-32bytes!",
    "dev-jwt-secret-change-me-at-least-32-bytes",
}


class Settings(BaseSettings):
    """Every knob of the platform. Policy values (deadlines, thresholds) are not here:
    they are versioned policy settings owned by the services."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    # sqlite+aiosqlite:///./var/hotline.db  → one file per service (hotline-intake.db, ...)
    # postgresql+asyncpg://user:pw@host/db  → one schema per service in that database
    db_url: str = "sqlite+aiosqlite:///./var/hotline.db"
    db_pool_size: int = 10
    # memory:// (embedded log in memory) · log:///path/bus.db (embedded log in a file) ·
    # kafka://host:port[,host:port]
    bus_url: str = "memory://"
    topic_prefix: str = ""
    kafka_partitions: int = 3
    # HMAC key the gateway signs caller identities with; services verify it.
    service_secret: str = "dev-internal-secret-change-me-32bytes!"
    jwt_secret: str = "dev-jwt-secret-change-me-at-least-32-bytes"
    jwt_ttl_minutes: int = 480
    users_file: str = ""  # JSON file of gateway users; empty → the demo users
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
    # embedded mode's durable log; empty → beside the SQLite files (var/hotline-bus.db)
    bus_log_path: str = ""
    relay_poll_seconds: float = 0.5
    intake_url: str = "http://127.0.0.1:8001"
    dispatch_url: str = "http://127.0.0.1:8002"
    sla_url: str = "http://127.0.0.1:8003"
    knowledge_url: str = "http://127.0.0.1:8004"
    evaluation_url: str = "http://127.0.0.1:8005"

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.env == "production" and self.service_secret in _DEV_SECRETS:
            raise ValueError("HOTLINE_SERVICE_SECRET must be set in production")
        return self

    def check_gateway_production(self) -> None:
        """The gateway alone signs tokens and knows users: it refuses the development
        JWT key and the demo users (public passwords) in production."""
        if self.env != "production":
            return
        if self.jwt_secret in _DEV_SECRETS:
            raise ValueError("HOTLINE_JWT_SECRET must be set in production")
        if not self.users_file:
            raise ValueError("HOTLINE_USERS_FILE must name the users in production")

    def service_url(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))

    def port_for(self, process: str) -> int:
        return self.port or DEFAULT_PORTS[process]

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")


@lru_cache
def get_settings() -> Settings:
    return Settings()
