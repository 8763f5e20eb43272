"""Channel events (hotline.channels): what happened at the boundary with outside systems."""

from __future__ import annotations

from shared.events.base import Channel, Event, EventTime, event


@event
class FollowUpReceived(Event):
    """A requester added to their open ticket through a channel (a WeChat follower's
    further message): the ticket's handlers see it on the ticket's timeline."""

    TYPE = "channel.follow_up_received"
    ticket_id: str
    channel: Channel
    account_id: str
    content: str
    received_at: EventTime


@event
class CallEnded(Event):
    """The phone system reports a call's end (no caller number: that stays in channels)."""

    TYPE = "channel.call_ended"
    call_id: str
    account_id: str
    ticket_id: str | None = None
    started_at: EventTime
    answered_at: EventTime | None = None
    ended_at: EventTime
    agent: str | None = None


@event
class DeliveryFailed(Event):
    """An outgoing webhook delivery gave up after its retry window: dead-lettered, to be
    redelivered by hand once the receiver is fixed."""

    TYPE = "channel.delivery_failed"
    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    ticket_id: str | None = None
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    dead_at: EventTime


@event
class NotificationFailed(Event):
    """A notification to a citizen or a unit (SMS, WeChat template message) could not be
    sent within the retry window. The recipient is not on the bus."""

    TYPE = "channel.notification_failed"
    notification_id: str
    ticket_id: str | None = None
    purpose: str
    medium: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    failed_at: EventTime
