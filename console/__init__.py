"""The console: the hotline's people at work in a browser (server-rendered, zh-CN). The
gateway mounts it at ``/``; it calls the platform's APIs through the gateway's own routing
with the signed-in user's token."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.bus import Bus
from shared.settings import Settings


def mount_console(gateway_app: FastAPI, settings: Settings, bus: Bus | None = None) -> FastAPI:
    """Mount the console at ``/`` (after every other route, so it only gets what no API
    route takes) and return it; the gateway runs its lifespan inside its own."""
    from console.app import create_console

    console: FastAPI = create_console(gateway_app, settings, bus=bus)
    gateway_app.mount("/", console, name="console")
    return console


def console_lifespan(console: Any) -> Any:
    return console.router.lifespan_context(console)
