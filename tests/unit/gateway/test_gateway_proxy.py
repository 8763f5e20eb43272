"""The proxy: the service sees the signed-in caller and the request as the client sent it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

import gateway.proxy
from gateway.app import create_gateway_app
from gateway.proxy import proxy, service_target, wire_target
from shared.auth import CALLER_HEADER, SIGNATURE_HEADER, Caller, Role, sign_headers
from shared.errors import PROBLEM_JSON
from shared.settings import SERVICES, Settings
from tests.unit.gateway.conftest import PASSWORDS, gateway_problem, stand_in_service


async def test_the_service_sees_the_caller_and_the_request_unchanged(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    headers = {
        **await login_as("unit1"),
        "content-type": "application/json; charset=utf-8",
        "x-request-id": "req-42",
        "idempotency-key": "k-1",
    }
    body = '{"content": "楼道灯坏了", "n": 1.50}'.encode()

    response = await gateway.post(
        "/api/v1/dispatch/echo/tickets/T1/reply?x=1&y=%E5%A4%A9%E6%B4%A5&y=2&z=a+b",
        content=body,
        headers=headers,
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/vnd.hotline-test+json"
    assert response.headers["location"] == "/echo/tickets/T1/reply"
    assert "x-internal-only" not in response.headers
    assert response.headers["x-request-id"] == "req-42"
    seen = response.json()
    assert seen["service"] == "dispatch"
    assert seen["caller"] == {
        "sub": "unit1",
        "role": "unit",
        "unit_id": "120101-housing",
        "industry": None,
        "district": None,
        "name": "和平区住房和建设委员会",
        "internal": False,
        "channel": None,
    }
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/tickets/T1/reply"
    assert seen["query"] == "x=1&y=%E5%A4%A9%E6%B4%A5&y=2&z=a+b"
    assert seen["body"].encode() == body
    assert seen["content_type"] == "application/json; charset=utf-8"
    assert seen["request_id"] == "req-42"
    assert seen["idempotency_key"] == "k-1"
    assert seen["authorization"] is None  # the token stays at the gateway


async def test_each_method_reaches_the_service_with_its_own_signature(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    headers = await login_as("op1")
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await gateway.request(method, "/api/v1/intake/echo/a%20b/c", headers=headers)

        assert response.status_code == 200, (method, response.text)
        assert response.json()["method"] == method
        assert response.json()["path"] == "/echo/a b/c"
        assert response.json()["caller"]["role"] == "operator"


async def test_a_request_id_is_made_when_the_client_sends_none(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    response = await gateway.get("/api/v1/intake/echo/x", headers=await login_as("op1"))

    request_id = response.headers["x-request-id"]
    assert request_id
    assert response.json()["request_id"] == request_id


async def test_identity_headers_sent_by_the_client_are_not_passed_on(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any], settings: Settings
) -> None:
    forged = sign_headers(
        settings.service_secret, Caller(sub="x", role=Role.ADMIN), "GET", "/echo/x"
    )

    response = await gateway.get(
        "/api/v1/intake/echo/x", headers={**await login_as("op1"), **forged}
    )

    assert response.status_code == 200
    assert response.json()["caller"]["role"] == "operator"


async def test_service_errors_come_back_naming_the_gateway_path(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    response = await gateway.post(
        "/api/v1/intake/tickets/T1/accept", headers={**await login_as("op1"), "x-request-id": "r9"}
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["rule"] == "Art 11"
    assert body["instance"] == "/api/v1/intake/tickets/T1/accept"  # what the client called
    assert response.headers["x-request-id"] == "r9"


async def test_a_request_straight_to_a_service_without_signed_headers_is_refused(
    stand_in: Callable[..., Any],
) -> None:
    service = stand_in("intake")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service), base_url="http://intake"
    ) as client:
        response = await client.get("/echo/x")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_a_tampered_signature_is_refused(
    stand_in: Callable[..., Any], settings: Settings
) -> None:
    operator = Caller(sub="op1", role=Role.OPERATOR)
    signed = sign_headers(settings.service_secret, operator, "GET", "/echo/x")
    as_admin = base64.urlsafe_b64encode(
        orjson.dumps({"sub": "op1", "role": "admin", "unit_id": None, "name": ""})
    ).decode()
    bad_signature = signed[SIGNATURE_HEADER][:-1] + (
        "0" if signed[SIGNATURE_HEADER][-1] != "0" else "1"
    )
    attempts = {
        "genuine": signed,
        "caller changed": {**signed, CALLER_HEADER: as_admin},
        "signature changed": {**signed, SIGNATURE_HEADER: bad_signature},
        "signed by another key": sign_headers("another-secret", operator, "GET", "/echo/x"),
        "signed for another path": sign_headers(
            settings.service_secret, operator, "GET", "/echo/y"
        ),
    }
    service = stand_in("intake")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service), base_url="http://intake"
    ) as client:
        statuses = {
            label: (await client.get("/echo/x", headers=headers)).status_code
            for label, headers in attempts.items()
        }

    assert statuses == {
        "genuine": 200,
        "caller changed": 401,
        "signature changed": 401,
        "signed by another key": 401,
        "signed for another path": 401,
    }


async def test_an_unknown_service_is_a_404_problem(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    response = await gateway.get("/api/v1/billing/echo/x", headers=await login_as("op1"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "billing" in response.json()["detail"]


async def test_an_unreachable_service_is_a_503_problem_naming_it(
    gateway_with: Callable[..., Any],
    stand_in: Callable[..., Any],
    failing_transport: Any,
) -> None:
    services = {
        "intake": stand_in("intake"),
        "sla": failing_transport(httpx.ConnectError("connection refused")),
    }
    async with gateway_with(services) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"username": "op1", "password": "op1-secret"}
        )
        headers = {"authorization": f"Bearer {login.json()['access_token']}"}
        response = await client.get("/api/v1/sla/echo/x", headers=headers)

    body = gateway_problem(response, 503)
    assert body["service"] == "sla"
    assert "sla" in body["detail"]
    assert "not sent" in body["detail"]


async def test_a_service_that_does_not_answer_in_time_is_a_504_problem(
    gateway_with: Callable[..., Any],
    stand_in: Callable[..., Any],
    failing_transport: Any,
) -> None:
    services = {
        "intake": stand_in("intake"),
        "knowledge": failing_transport(httpx.ReadTimeout("no answer")),
    }
    async with gateway_with(services) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"username": "op1", "password": "op1-secret"}
        )
        headers = {"authorization": f"Bearer {login.json()['access_token']}"}
        response = await client.get("/api/v1/knowledge/echo/x", headers=headers)

    assert gateway_problem(response, 504)["service"] == "knowledge"


def _routes_of(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found += _routes_of(included.routes) if included is not None else [route]
    return found


async def test_a_service_path_is_proxied_without_trying_the_gateways_own_routes(
    settings: Settings, stand_in: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching a proxied request against every gateway and console route first cost a
    tenth of the gateway's CPU per request."""
    app = create_gateway_app(settings, {"intake": httpx.ASGITransport(app=stand_in("intake"))})
    tried: list[str] = []
    for route in app.router.routes:
        if getattr(route, "endpoint", None) is not proxy:
            matches = route.matches

            def spy(scope: Any, matches: Any = matches) -> Any:
                tried.append(scope["path"])
                return matches(scope)

            monkeypatch.setattr(route, "matches", spy)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "op1", "password": PASSWORDS["op1"]}
            )
            assert "/api/v1/auth/login" in tried  # the spies see the gateway's own routes
            response = await client.get(
                "/api/v1/intake/echo/x",
                headers={"authorization": f"Bearer {login.json()['access_token']}"},
            )

    assert response.json()["path"] == "/echo/x"
    assert "/api/v1/intake/echo/x" not in tried


def test_no_gateway_route_lies_under_a_services_path(settings: Settings) -> None:
    """What lets the proxy take a service's paths before the gateway's own routes."""
    app = create_gateway_app(settings)
    own = [
        route.path
        for route in _routes_of(app.router.routes)
        if getattr(route, "endpoint", None) is not proxy
    ]

    assert own  # the walk finds them
    assert [p for p in own if p.split("/")[1:4] in (["api", "v1", s] for s in SERVICES)] == []


PRINTABLE = [chr(i) for i in range(0x20, 0x7F)]
SECRET = "test-service-secret-of-at-least-32-bytes"


@pytest.mark.parametrize(
    "shape",
    ["/a{c}b", "/{c}", "/a/{c}/b?q{c}{c}", "/a?x={c}", "/a?{c}", "/%{c}1", "/a?%{c}", "/.{c}/"],
)
def test_the_wire_target_is_the_one_httpx_would_send(shape: str) -> None:
    """The proxy writes path and query itself; a service must get (and the signature cover)
    what httpx made of them before: each printable character in each place, the dot
    segments httpx removes, percent signs with and without their two hex digits."""
    for c in PRINTABLE:
        target = shape.format(c=c)
        assert wire_target(target) == httpx.URL("http://intake" + target).raw_path.decode()
    for target in ("/a/./b", "/a/../b?x=/../", "//x/..", "/a/b/.."):
        assert wire_target(target) == httpx.URL("http://intake" + target).raw_path.decode()


def test_a_service_target_seen_before_is_not_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway proxies the same few targets all day: each is made (and checked as httpx
    would send it) once, and is what ``wire_target`` makes of it, query as signed."""
    made: list[tuple[str, str]] = []
    make = gateway.proxy._target

    def counting(scope: Any, service: str, path: str) -> str:
        made.append((service, path))
        return make(scope, service, path)

    monkeypatch.setattr(gateway.proxy, "_target", counting)
    monkeypatch.setattr(gateway.proxy, "_TARGETS", {})
    tickets = {"raw_path": b"/api/v1/intake/tickets", "query_string": b""}
    found = {"raw_path": b"/api/v1/intake/tickets", "query_string": b"q=%E8%B7%AF+x"}
    odd = {"raw_path": b"/api/v1/intake/a/./b c", "query_string": b"x=<1>"}
    answers = [
        service_target(scope, "intake", path)
        for scope, path in [
            (tickets, "/tickets"),
            (tickets, "/tickets"),
            (found, "/tickets"),
            (odd, "/a/./b c"),
            (found, "/tickets"),
            (odd, "/a/./b c"),
        ]
    ]

    assert made == [("intake", "/tickets"), ("intake", "/tickets"), ("intake", "/a/./b c")]
    assert answers[:4] == [
        ("/tickets", b""),
        ("/tickets", b""),
        ("/tickets?q=%E8%B7%AF+x", b"q=%E8%B7%AF+x"),
        ("/a/b%20c?x=%3C1%3E", b"x=%3C1%3E"),
    ]
    assert answers[4:] == [answers[2], answers[3]]


def test_a_callers_identity_is_encoded_once_for_all_its_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway signs for the same callers all day; dumping and encoding the same
    identity again for each request was waste."""
    dumped: list[str] = []
    dump = Caller.model_dump

    def counting_dump(self: Caller, **kwargs: Any) -> dict[str, Any]:
        dumped.append(self.sub)
        return dump(self, **kwargs)

    monkeypatch.setattr(Caller, "model_dump", counting_dump)
    fields = {"sub": f"op-{uuid.uuid4().hex}", "role": Role.OPERATOR, "name": "话务员"}
    first = sign_headers(SECRET, Caller(**fields), "GET", "/tickets")
    again = sign_headers(SECRET, Caller(**fields), "POST", "/tickets", body=b"{}")
    other = sign_headers(SECRET, Caller(**{**fields, "role": Role.AGENCY}), "GET", "/tickets")

    assert first[CALLER_HEADER] == again[CALLER_HEADER] != other[CALLER_HEADER]
    assert dumped == [fields["sub"], fields["sub"]]  # once per distinct caller
    assert orjson.loads(base64.urlsafe_b64decode(other[CALLER_HEADER]))["role"] == "agency"


@asynccontextmanager
async def started(
    settings: Settings, stand_in: Callable[..., Any]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A gateway in front of a stand-in intake, and its client with an operator signed in."""
    app = create_gateway_app(settings, {"intake": httpx.ASGITransport(app=stand_in("intake"))})
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "op1", "password": PASSWORDS["op1"]}
            )
            client.headers["authorization"] = f"Bearer {login.json()['access_token']}"
            yield app, client


async def test_a_service_path_reaches_the_proxy_past_the_router(
    settings: Settings, stand_in: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router, its exception layer and starlette's request and response objects cost a
    proxied request as much CPU as the proxy's own work: no route is matched for it, not
    even the proxy's, and FastAPI's own layers (server errors, telemetry, body limit) are
    not passed either. A method the proxy does not take still goes to the router."""
    async with started(settings, stand_in) as (app, client):
        layered: list[str] = []
        stack = app.middleware_stack
        assert stack is not None  # built at start

        async def fastapis_layers(scope: Any, receive: Any, send: Any) -> None:
            layered.append(scope["method"])
            await stack(scope, receive, send)

        monkeypatch.setattr(app, "middleware_stack", fastapis_layers)
        tried: list[tuple[str, str]] = []
        for route in _routes_of(app.router.routes):
            matches = route.matches

            def spy(scope: Any, matches: Any = matches) -> Any:
                tried.append((scope["method"], scope["path"]))
                return matches(scope)

            monkeypatch.setattr(route, "matches", spy)

        response = await client.post("/api/v1/intake/echo/x", content=b"{}")
        assert response.status_code == 201, response.text
        assert response.json()["path"] == "/echo/x"
        assert response.headers["x-request-id"]  # its edge all the same
        assert (tried, layered) == ([], [])

        other = await client.request("TRACE", "/api/v1/intake/echo/x")
    assert ("TRACE", "/api/v1/intake/echo/x") in tried
    assert layered == ["TRACE"]
    assert other.status_code == 404  # the router's answer (the console's page), as before


async def test_a_refused_proxied_request_is_a_problem_with_its_trace_id_counted_by_route(
    gateway_with: Callable[..., Any], settings: Settings
) -> None:
    settings.metrics_token = "scrape-token"
    async with gateway_with({"intake": stand_in_service("intake", settings)}) as client:
        refused = await client.post(
            "/api/v1/intake/tickets", content=b"{}", headers={"x-request-id": "r-401"}
        )
        forged = await client.get(
            "/api/v1/intake/echo/x", headers={"authorization": "Bearer not-a-token"}
        )
        metrics = await client.get("/metrics", headers={"authorization": "Bearer scrape-token"})

    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.headers["x-request-id"] == "r-401"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "sign in first: send Authorization: Bearer <access_token>",
        "instance": "/api/v1/intake/tickets",
        "trace_id": "r-401",
    }
    assert forged.status_code == 401
    assert forged.json()["detail"] == "the access token is not valid"
    assert forged.json()["trace_id"] == forged.headers["x-request-id"]
    counted = (
        'hotline_http_request_duration_seconds_count{{method="{}",route="{}",status="401"}} 1.0'
    )
    assert counted.format("POST", "/api/v1/intake/{path:path}") in metrics.text
    assert counted.format("GET", "/api/v1/intake/{path:path}") in metrics.text


async def test_a_session_store_outage_is_a_503_with_retry_after(
    settings: Settings, stand_in: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the app's handler for the outage's class (OSError), as on any route: a 503
    that says when to retry, and nothing raised past it."""
    async with started(settings, stand_in) as (app, client):

        async def gone(session_id: str) -> bool:
            raise ConnectionRefusedError("the gateway's database is down")

        app.state.sessions.clear()
        monkeypatch.setattr(app.state.identities, "session_active", gone)
        response = await client.get("/api/v1/intake/echo/x")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    assert response.json()["instance"] == "/api/v1/intake/echo/x"


async def test_an_unexpected_error_in_the_proxy_is_a_500_problem_counted_by_route(
    settings: Settings, stand_in: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*made_of: Any) -> Any:
        raise RuntimeError("a bug")

    async with started(settings, stand_in) as (app, client):  # answered, not raised on
        monkeypatch.setattr("gateway.proxy.service_target", broken)
        response = await client.get("/api/v1/intake/echo/x", headers={"x-request-id": "r-500"})
        samples = app.state.metrics.http.collect()[0].samples

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["trace_id"] == "r-500"
    assert {
        s.labels["route"]
        for s in samples
        if s.name.endswith("_count") and s.labels["status"] == "500"
    } == {"/api/v1/intake/{path:path}"}


async def test_the_proxy_takes_the_body_the_hygiene_layer_read(
    settings: Settings, stand_in: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RequestHygiene reads and bounds the body; the proxy takes it from the scope rather
    than receiving it again from the hygiene layer's replay (a coroutine and a message)."""
    import gateway.proxy

    received: list[bytes] = []
    receive_body = gateway.proxy._body

    async def counted(receive: Any) -> bytes:
        body = await receive_body(receive)
        received.append(body)
        return body

    monkeypatch.setattr(gateway.proxy, "_body", counted)
    async with started(settings, stand_in) as (_, client):
        body = '{"content": "楼道灯坏了"}'.encode()
        response = await client.post("/api/v1/intake/echo/x", content=body)
    assert response.status_code == 201, response.text
    assert response.json()["body"] == body.decode()
    assert received == []
