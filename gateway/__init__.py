"""The gateway: sign-in, the proxy to every service, one merged OpenAPI (ARCHITECTURE.md)."""

from gateway.app import create_gateway_app

__all__ = ["create_gateway_app"]
