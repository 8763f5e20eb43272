"""``python -m services.intake``: the intake service in its own process.

``python -m services.intake rekey [--all]`` re-seals the requester data sealed under an
older key with HOTLINE_REQUESTER_KEY_ID's key (``--all``: every row, and the phone index
again, after a new HOTLINE_REQUESTER_INDEX_KEY); run it against HOTLINE_DB_URL after
rotating, while the service runs."""

from __future__ import annotations

import argparse
import asyncio
import sys


async def rekey_command(everything: bool) -> int:
    from services.intake.app import SPEC
    from services.intake.handlers.rekey import rekey
    from shared.db import Database
    from shared.settings import get_settings

    settings = get_settings()
    db = Database("intake", settings.db_url)
    try:
        await db.migrate(SPEC.migrations)
        changed = await rekey(db, settings.requester_key_ring(), everything=everything)
    finally:
        await db.dispose()
    print(f"re-sealed {changed} tickets under key {settings.requester_key_ring().current}")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        from services.intake.app import SPEC
        from shared.service import run_service

        run_service(SPEC)
        return 0
    parser = argparse.ArgumentParser(prog="python -m services.intake")
    commands = parser.add_subparsers(dest="command", required=True)
    rekey = commands.add_parser("rekey", help="re-seal requester data under the current key")
    rekey.add_argument("--all", action="store_true", help="every row, and the phone index")
    args = parser.parse_args(argv)
    return asyncio.run(rekey_command(args.all))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
