"""The hot path: ``/api/v1/<service>/<path>`` → the service at ``/<path>``, with the caller's
identity in signed headers. Bodies pass through as bytes, never parsed."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_from_bytes

import httpx
import orjson
from fastapi import FastAPI
from starlette.datastructures import URL, State
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from gateway.auth import TokenVerifier, scope_client_address
from gateway.channels import ApiKeys, api_key_of_authorization, api_key_of_header
from gateway.identities import SessionGuard
from gateway.throttle import Throttle
from gateway.transport import REPLAYABLE, Answer, HTTP1Transport, Origin
from shared.access import public
from shared.asgi import BODY_READ
from shared.auth import Caller, Role, signed_headers
from shared.errors import PROBLEM_JSON, DomainError, NotFound, app_exception_handler
from shared.settings import SERVICES, Settings

log = logging.getLogger("hotline.gateway.proxy")

PROXY_PATH = "/api/v1/{service}/{path:path}"
PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The only reads open without signing in (deny by default): the public case page (Art 30).
# The service is told the caller is an anonymous member of the public.
PUBLIC_READS = frozenset({("knowledge", "/cases/public")})
ANONYMOUS = Caller(sub="anonymous", role=Role.CITIZEN)
# Per service. 1,000 req/s at a few ms each keeps tens of connections busy; the ceiling
# only stops a stalled service from drawing ever more connections.
MAX_CONNECTIONS = 200
MAX_KEEPALIVE = 64
# far below the services' keep-alive (shared/http_server.py KEEPALIVE_SECONDS), so a service
# never closes a connection as the gateway sends a request on it
KEEPALIVE_EXPIRY = 4.0
TIMEOUT = httpx.Timeout(connect=2.0, read=30.0, write=10.0, pool=5.0)
_TIMEOUTS = TIMEOUT.as_dict()
_EXTENSIONS = {"timeout": _TIMEOUTS}
# The writes a service makes once per Idempotency-Key (the caller's key, per caller): with
# the client's key, such a request lost with a connection the service closed before
# answering is sent again (gateway/transport.py), where any other write fails with 502.
KEYED_WRITES = frozenset({("intake", "POST", "/tickets")})
_KEYED_EXTENSIONS = {**_EXTENSIONS, REPLAYABLE: True}
RETRY_AFTER = 1  # seconds; a 502, 503 or 504 from the gateway says when to try again

# Request headers a service may need; everything else (cookies, Authorization, any forged
# x-hotline-* identity) stays at the gateway.
_FORWARD = frozenset(
    {
        b"content-type",
        b"accept",
        b"accept-language",
        b"idempotency-key",
        b"if-match",
        b"if-none-match",
        b"x-hotline-signature",  # a channel account's body signature (CTI webhooks)
    }
)
# Response headers worth passing back. x-request-id is added by the gateway's middleware
# (the service echoes the one we sent, so it is the same value).
_RETURN = frozenset(
    {
        b"content-type",
        b"location",
        b"retry-after",
        b"etag",
        b"last-modified",
        b"cache-control",
        b"content-disposition",
    }
)
_QUERY_SAFE = "!$&'()*+,/:;=?@[]~%"
_PROBLEM_JSON = PROBLEM_JSON.encode()
_ANY_ORIGIN = "http://service"
# A target httpx sends as it is: printable ASCII but for what it percent-encodes (space
# "#<> everywhere, ?`{} in the path), and no "." or ".." segment (which it removes).
_AS_HTTPX_SENDS = re.compile(r"""[!$-;=@-_a-z|~]*(?:\?[!$-;=?-~]*)?""")


class ServiceUnavailable(DomainError):
    """The service could not be reached: nothing was sent to it."""

    status = 503
    title = "Service unavailable"
    retry_after = RETRY_AFTER


class BadGateway(DomainError):
    """The service closed the connection without a whole answer: the request may or may
    not have taken effect."""

    status = 502
    title = "Bad gateway"
    retry_after = RETRY_AFTER


class GatewayTimeout(DomainError):
    status = 504
    title = "Gateway timeout"
    retry_after = RETRY_AFTER


@dataclass(frozen=True, slots=True)
class Upstream:
    """One service as the gateway reaches it. ``client`` (health, OpenAPI) and the proxy
    share ``transport`` and so its connection pool; the proxy hands requests to the
    transport directly (``send``), skipping the client's cookie and redirect handling and,
    over HTTP1Transport, httpx's request and response objects (a fifth of the gateway's
    CPU per request)."""

    name: str
    base_url: str
    transport: httpx.AsyncBaseTransport
    client: httpx.AsyncClient
    origin: Origin = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin.of(httpx.URL(self.base_url)))

    def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        replayable: bool,
    ) -> Awaitable[Answer]:
        """``target``: path and query as they go on the wire (``wire_target``). The answer
        to await (over HTTP1Transport, its round trip itself: no coroutine around it)."""
        if isinstance(self.transport, HTTP1Transport):  # no httpx objects per request
            return self.transport.send(
                self.origin,
                method,
                target.encode("ascii"),
                headers,
                body,
                replayable=replayable,
                timeouts=_TIMEOUTS,
            )
        # an in-process transport (embedded mode, tests)
        request = httpx.Request(
            method,
            self.base_url + target,
            headers=headers,
            content=body,
            extensions=_KEYED_EXTENSIONS if replayable else _EXTENSIONS,
        )
        return self._in_process(request)

    async def _in_process(self, request: httpx.Request) -> Answer:
        response = await self.transport.handle_async_request(request)
        return Answer(response.status_code, response.headers.raw, await response.aread())


class Upstreams:
    """One pooled ``httpx.AsyncClient`` per service, opened at start and closed at stop.

    With ``transports`` (embedded mode) a service is reached in-process at
    ``http://<name>``; otherwise at ``settings.service_url(name)``, or through the Unix
    socket ``settings.service_uds(name)`` where one is set.
    """

    def __init__(
        self,
        settings: Settings,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.services: dict[str, Upstream] = {}
        self.secret = settings.service_secret  # for the gateway's own calls (timeline)
        for name in SERVICES:
            if transports is not None:
                if name not in transports:
                    continue
                transport: httpx.AsyncBaseTransport = transports[name]
                base_url = f"http://{name}"
            else:
                transport = HTTP1Transport(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_KEEPALIVE,
                    keepalive_expiry=KEEPALIVE_EXPIRY,
                    uds=settings.service_uds(name) or None,
                )
                base_url = settings.service_url(name).rstrip("/")
            client = httpx.AsyncClient(
                base_url=base_url, transport=transport, timeout=TIMEOUT, trust_env=False
            )
            self.services[name] = Upstream(name, base_url, transport, client)

    @property
    def clients(self) -> dict[str, httpx.AsyncClient]:
        return {name: upstream.client for name, upstream in self.services.items()}

    def get(self, service: str) -> Upstream:
        upstream = self.services.get(service)
        if upstream is None:
            raise NotFound(f"no service named {service!r}", services=list(self.services))
        return upstream

    async def aclose(self) -> None:
        for upstream in self.services.values():
            await upstream.client.aclose()  # closes the shared transport too


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """What the proxy reads of the gateway app's state on every request, as plain
    attributes: each of starlette's ``State`` attributes is a Python-level lookup (~0.4 µs;
    six a request). Made at start, once the upstreams and the session guard are open; the
    app holds it as a plain attribute too (``Gateway.proxy_context``)."""

    settings: Settings
    upstreams: Upstreams
    tokens: TokenVerifier
    sessions: SessionGuard
    throttle: Throttle
    api_keys: ApiKeys

    @classmethod
    def of(cls, state: State) -> ProxyContext:
        return cls(
            state.settings,
            state.upstreams,
            state.tokens,
            state.sessions,
            state.throttle,
            state.api_keys,
        )


def _target(scope: Mapping[str, object], service: str, path: str) -> str:
    """The service-side URL, keeping the client's own encoding of path and query."""
    raw_path = scope.get("raw_path")
    prefix = f"/api/v1/{service}".encode()
    if isinstance(raw_path, bytes) and raw_path.startswith(prefix) and raw_path.isascii():
        target = raw_path[len(prefix) :].decode("ascii")
    else:
        target = quote("/" + path)
    query = scope.get("query_string")
    if isinstance(query, bytes) and query:
        target += "?" + (
            query.decode("ascii") if query.isascii() else quote_from_bytes(query, safe=_QUERY_SAFE)
        )
    return target


# The service-side targets made (``wire_target`` of ``_target``) and their query strings as
# signed, by what each was made of: the gateway proxies the same few targets all day; one
# naming a record (a ticket's number) is kept until the dictionary is full, then they all
# start over.
_TARGETS: dict[tuple[object, object, str, str], tuple[str, bytes]] = {}
_TARGETS_KEPT = 1024


def service_target(scope: Mapping[str, object], service: str, path: str) -> tuple[str, bytes]:
    """The service-side target of the request of ``scope`` as it goes on the wire
    (``wire_target``) and its query string, made once per raw path, query, service and
    path."""
    key = (scope.get("raw_path"), scope.get("query_string"), service, path)
    made = _TARGETS.get(key)
    if made is None:
        target = wire_target(_target(scope, service, path))
        made = (target, target.partition("?")[2].encode("ascii"))
        if len(_TARGETS) >= _TARGETS_KEPT:
            _TARGETS.clear()
        _TARGETS[key] = made
    return made


def wire_target(target: str) -> str:
    """``target`` as httpx puts it on the wire, and the signature covers it: most are
    already so (checked quickly); any other is normalised by httpx itself."""
    if _AS_HTTPX_SENDS.fullmatch(target) and "/." not in target.partition("?")[0]:
        return target
    return httpx.URL(_ANY_ORIGIN + target).raw_path.decode("ascii")


class Proxy:
    """The proxy, as a plain ASGI app: the hot path of every ticket, so no starlette
    ``Request``/``Response`` objects are built for it. A refusal (``DomainError``: 401, 403,
    404, 429, 502-504; a database outage) is answered by the app's own exception handlers
    (shared/errors.py), as any route's; anything else by the app's handler of unexpected
    errors (a 500 problem, the traceback logged), as the server-error layer would: the
    gateway's app (gateway/app.py ``Gateway``) hands the proxy the services' paths past that
    layer. The router's routes for them (``install_proxy``) remain for what it does not take."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["app"]
        try:
            context: ProxyContext = app.proxy_context  # the Gateway's (gateway/app.py)
            body: bytes | None = scope.get(BODY_READ)  # RequestHygiene's, outside
            if body is None:
                body = await _body(receive)
            status, headers, content = await forward(context, scope, body)
        except Exception as exc:
            handler = app_exception_handler(app, exc) or app.exception_handlers[Exception]
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


# a pass-through: each service enforces its route's own declaration (shared/access.py) on
# the caller the proxy signs for it (a token's or an API key's)
proxy = public()(Proxy())


async def _body(receive: Receive) -> bytes:
    """The request's whole body (RequestHygiene has read and bounded it already)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def forward(
    context: ProxyContext, scope: Scope, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The service's answer to the request of ``scope`` (its route's ``path_params``:
    ``service``, ``path``): status, headers to send back, body."""
    path_params = scope["path_params"]
    service: str = path_params["service"]
    path = "/" + path_params["path"]
    method: str = scope["method"]

    authorization: str | None = None
    # the API key (gateway/channels.py), read in the same pass: the first X-Api-Key, or
    # the first Authorization naming the ApiKey scheme with a key, decides
    api_key: str | None = None
    api_key_read = False
    keyed = False
    headers: list[tuple[bytes, bytes]] = []
    for key, value in scope["headers"]:
        if key in _FORWARD:
            headers.append((key, value))
            keyed = keyed or key == b"idempotency-key"
        elif key == b"authorization":
            authorization = value.decode("latin-1")
            if not api_key_read:
                api_key = api_key_of_authorization(authorization)
                api_key_read = api_key is not None
        elif key == b"x-api-key" and not api_key_read:
            api_key = api_key_of_header(value)
            api_key_read = True
    upstreams = context.upstreams
    if api_key is not None:  # a channel account (gateway/channels.py)
        caller = await context.api_keys.caller(upstreams, api_key)
    elif authorization is None and method == "GET" and (service, path) in PUBLIC_READS:
        caller = ANONYMOUS
    else:
        caller, session_id = context.tokens.session_from_authorization(authorization)
        if not context.sessions.standing(session_id):  # else nothing to await
            await context.sessions.check(session_id)
        scope["state"]["session_id"] = session_id
    upstream = upstreams.get(service)

    limited = throttle_abuse(context.throttle, scope, caller, service, method, path, body)
    if limited is not None:
        await limited
    target, query = service_target(scope, service, path)
    headers.append((b"x-request-id", scope["state"]["trace_id"].encode()))
    # signed as sent: the service checks method, path, query and body against it
    headers += signed_headers(
        context.settings.service_secret, caller, method, path, query=query, body=body
    )
    try:
        answer = await upstream.send(
            method,
            target,
            headers,
            body,
            replayable=keyed and (service, method, path) in KEYED_WRITES,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        log.warning("service unreachable", extra={"service": service, "error": repr(exc)})
        raise ServiceUnavailable(
            f"service {service} is unavailable; the request was not sent to it", service=service
        ) from exc
    except httpx.TimeoutException as exc:
        log.warning("service timed out", extra={"service": service, "error": repr(exc)})
        raise GatewayTimeout(
            f"service {service} did not answer in time; the request may or may not have "
            "taken effect",
            service=service,
        ) from exc
    except httpx.TransportError as exc:
        log.warning("service gave no answer", extra={"service": service, "error": repr(exc)})
        raise BadGateway(
            f"service {service} closed the connection without answering; the request may or "
            "may not have taken effect: check before repeating it, or repeat it with the same "
            "Idempotency-Key where the operation takes one",
            service=service,
        ) from exc

    status, content = answer.status, answer.content
    returned = []
    content_type: bytes | None = None
    for name, value in answer.headers:
        lower = name.lower()
        if lower in _RETURN:
            returned.append((name, value))
            if lower == b"content-type" and content_type is None:
                content_type = value
    if content_type is not None and content_type.startswith(_PROBLEM_JSON):
        content = _instance_at_gateway(content, URL(scope=scope).path)
    # as starlette's Response(content, status_code) had it: a length but for 1xx, 204, 304
    back = [] if status < 200 or status in (204, 304) else [_length(content)]
    return status, back + returned, content


def _length(content: bytes) -> tuple[bytes, bytes]:
    return b"content-length", str(len(content)).encode("latin-1")


def _instance_at_gateway(content: bytes, path: str) -> bytes:
    """A service's problem names its own path; the client knows the gateway's."""
    try:
        problem = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content
    if not isinstance(problem, dict):
        return content
    problem["instance"] = path
    return orjson.dumps(problem)


def throttle_abuse(
    throttle: Throttle,
    scope: Scope,
    caller: Caller,
    service: str,
    method: str,
    path: str,
    body: bytes,
) -> Awaitable[None] | None:
    """The limits on proxied routes (gateway/throttle.py): citizen lookups per client
    address and per ticket, registrations per channel account. What to await, or None
    where no limit applies (most requests: no coroutine for them)."""
    if service != "intake" or method != "POST":
        return None
    if path == "/tickets/lookup":
        return _throttle_lookup(throttle, scope, body)
    if path == "/tickets" and caller.role is Role.CITIZEN:
        return throttle.hit(throttle.registration, caller.sub)
    return None


async def _throttle_lookup(throttle: Throttle, scope: Scope, body: bytes) -> None:
    await throttle.hit(throttle.lookup_client, scope_client_address(scope))
    try:
        ticket_id = orjson.loads(body).get("ticket_id")
    except (orjson.JSONDecodeError, AttributeError):
        ticket_id = None
    if isinstance(ticket_id, str):
        await throttle.hit(throttle.lookup_ticket, ticket_id.strip().upper()[:40])


class ServiceRoute(Route):
    """The proxy's route for the services' own paths only (``/api/v1/intake/...``): no
    route of the gateway lies under them, so it is tried first, before the dozens of
    gateway and console routes every proxied request would otherwise be matched against."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child["path_params"]["service"] not in SERVICES:
            return Match.NONE, {}
        return match, child


_SERVICE_PREFIX = "/api/v1/"
_DISPATCHED = frozenset(PROXY_METHODS)


def service_path_params(scope: Scope) -> dict[str, str] | None:
    """The ``path_params`` of a request ``ServiceRoute`` would take (``service``, ``path``),
    matched without the router; None for any other request (another method, a
    ``root_path``), which the router serves as before."""
    path: str = scope["path"]
    if (
        not path.startswith(_SERVICE_PREFIX)
        or scope["method"] not in _DISPATCHED
        or scope.get("root_path")
    ):
        return None
    # as PROXY_PATH's pattern: /api/v1/{service}/{path}, service without a slash
    service, slash, rest = path[len(_SERVICE_PREFIX) :].partition("/")
    return {"service": service, "path": rest} if slash and service in SERVICES else None


def install_proxy(app: FastAPI) -> None:
    """The services' paths first; any other ``/api/v1/<name>/...`` last, after the gateway's
    own routes (auth, admin, tickets), where it answers that there is no such service.
    (The gateway's app takes the services' paths before its router: ``Gateway``.)"""
    app.router.routes.insert(
        0, ServiceRoute(PROXY_PATH, proxy, methods=PROXY_METHODS, include_in_schema=False)
    )
    # an ASGI app as endpoint, which starlette serves as such (its typing names functions)
    app.router.add_route(PROXY_PATH, proxy, methods=PROXY_METHODS, include_in_schema=False)  # type: ignore[arg-type]
