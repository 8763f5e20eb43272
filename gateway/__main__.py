"""``python -m gateway``: the gateway in its own process (distributed mode)."""

import uvicorn

from gateway.app import create_gateway_app
from shared.logging import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    uvicorn.run(
        create_gateway_app(settings),
        host=settings.host,
        port=settings.port_for("gateway"),
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,  # an open live board (SSE) never ends by itself
    )


if __name__ == "__main__":
    main()
