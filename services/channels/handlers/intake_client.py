"""Calls to the intake service, made as the channel account (its own identity, signed as
the gateway signs callers): the adapters register tickets through intake's API."""

from __future__ import annotations

from typing import Any

import httpx

from shared.auth import Caller, SignedAs
from shared.service import ServiceContext

TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class IntakeClient:
    def __init__(self, ctx: ServiceContext) -> None:
        transports: dict[str, httpx.AsyncBaseTransport] = ctx.extras.get("transports") or {}
        transport = transports.get("intake")
        base_url = "http://intake" if transport else ctx.settings.service_url("intake")
        self.secret = ctx.settings.service_secret
        self.http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=TIMEOUT, trust_env=False
        )

    async def call(
        self, caller: Caller, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        auth = SignedAs(self.secret, caller)
        return await self.http.request(method, path, auth=auth, json=json, params=params)

    async def aclose(self) -> None:
        await self.http.aclose()


def intake(ctx: ServiceContext) -> IntakeClient:
    """One client per service, made on first use and again if the transports change
    (embedded mode hands over its in-process ones only after every service has started)."""
    transports = ctx.extras.get("transports")
    known = ctx.extras.get("intake_client")
    if known is None or known[0] is not transports:
        known = ctx.extras["intake_client"] = (transports, IntakeClient(ctx))
    client: IntakeClient = known[1]
    return client
