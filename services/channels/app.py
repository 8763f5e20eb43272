"""Channels service (渠道与对接): the boundary with outside systems — channel accounts and
API keys, the WeChat official account, the phone system, outgoing webhooks, notifications."""

from pathlib import Path

from services.channels.api import routers
from services.channels.handlers import (
    EVENT_HANDLERS,
    MANY_HANDLERS,
    channel_metrics,
    check_secrets,
    delivery_sender,
    notification_sender,
    of_no_effect,
    retry_pending,
    wanted_types,
)
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="channels",
    title="12345 channels and integrations",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    handlers=EVENT_HANDLERS,
    many_handlers=MANY_HANDLERS,
    many_read=False,  # they keep and pass on the envelopes' JSON values
    of_no_effect=of_no_effect,
    wanted_types=wanted_types,
    on_start=[check_secrets],
    background=[delivery_sender, notification_sender, retry_pending],
    metrics=[channel_metrics],
)
