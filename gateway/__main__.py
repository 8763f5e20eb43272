"""``python -m gateway``: the gateway in its own process (distributed mode).

``python -m gateway users add|disable|enable|reset-password|bind|list ...`` manages the
gateway's users in its database (HOTLINE_DB_URL), e.g.::

    python -m gateway users add wang --name "话务员 王丽" --role operator
    python -m gateway users bind zhujian --industry housing
    python -m gateway users disable wang

Passwords are read from the terminal (or ``--password-stdin``), never from arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from shared.auth import Role
from shared.settings import get_settings


def serve() -> None:
    from gateway.app import create_gateway_app
    from shared.http_server import serve as serve_app
    from shared.logging import configure_logging

    settings = get_settings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    serve_app(
        create_gateway_app(settings, freeze_heap=True),
        host=settings.host,
        port=settings.port_for("gateway"),
        timeout_graceful_shutdown=5,  # an open live board (SSE) never ends by itself
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


async def users_command(args: argparse.Namespace) -> int:
    from gateway.identities import open_identities
    from shared.errors import DomainError

    store = await open_identities(get_settings())
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.action == "add":
            account = await store.add(
                username=args.username,
                name=args.name,
                role=Role(args.role),
                password=_password(args),
                unit_id=args.unit_id,
                industry=args.industry,
                district=args.district,
                actor=actor,
            )
        elif args.action == "disable":
            account = await store.disable(args.username, actor=actor)
        elif args.action == "enable":
            account = await store.disable(args.username, actor=actor, disabled=False)
        elif args.action == "reset-password":
            account = await store.reset_password(args.username, _password(args), actor=actor)
        elif args.action == "bind":
            account = await store.bind(
                args.username,
                actor=actor,
                unit_id=args.unit_id,
                industry=args.industry,
                district=args.district,
            )
        else:
            for one in await store.list():
                print(one.public())
            return 0
    except DomainError as refused:
        print(f"refused: {refused.detail}", file=sys.stderr)
        return 1
    finally:
        await store.db.dispose()
    print(account.public())
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m gateway")
    commands = top.add_subparsers(dest="command")
    users = commands.add_parser("users", help="manage the gateway's users")
    actions = users.add_subparsers(dest="action", required=True)
    for name in ("add", "disable", "enable", "reset-password", "bind", "list"):
        action = actions.add_parser(name)
        if name != "list":
            action.add_argument("username")
        if name in ("add", "reset-password"):
            action.add_argument("--password-stdin", action="store_true")
        if name == "add":
            action.add_argument("--name", required=True)
            action.add_argument("--role", required=True, choices=[r.value for r in Role])
        if name in ("add", "bind"):
            action.add_argument("--unit-id")
            action.add_argument("--industry")
            action.add_argument("--district")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "users":
        return asyncio.run(users_command(args))
    serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
