"""The catalog (Art 7): the shipped Tianjin demo, versions with effective dates, admin
changes, import and export, and the events other services build read models from."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.dispatch.handlers import catalog_versions
from services.dispatch.handlers.catalog_versions import CATALOG_FILE, starter_document
from tests.conftest import counted_due_loop, recorded_idle_waits, waits_double_then_start_over
from tests.unit.dispatch.conftest import T0, Harness, until

DOMAINS = {
    "housing": "HOUSE-",
    "roads": "ROAD-",
    "water": "WATER-",
    "power": "POWER-",
    "gas": "GAS-",
    "heating": "HEAT-",
    "environment": "ENV-",
    "market supervision": "MKT-",
    "transport": "TRANS-",
    "education": "EDU-",
    "health": "HEALTH-",
    "social security": "SOC-",
    "public security": "POLICE-",
}


def test_the_demo_catalog_covers_tianjin() -> None:
    data = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    assert len(data["districts"]) == 16
    doc = starter_document()
    assert len(doc.matters) >= 60
    for domain, prefix in DOMAINS.items():
        assert any(m.code.startswith(prefix) for m in doc.matters), domain
    routes = {m.code: m.responsible for m in doc.matters}
    assert routes["WATER-001"]["120103"] == "city-water"
    assert routes["GAS-001"]["120101"] == "city-gas"
    assert routes["URBAN-003"]["120101"] == "120101-urban"
    assert routes["OTHER-001"] == {}
    units = {u.unit_id for u in doc.units}
    assert {"120101-housing", "120103-housing", "120101-urban", "city-water"} <= units


async def test_loading_publishes_every_unit_and_matter(service: Harness) -> None:
    doc = starter_document()
    units = {e.payload["unit_id"] for e in service.events("catalog.unit_published")}
    matters = {e.payload["code"] for e in service.events("catalog.matter_published")}
    assert units == {u.unit_id for u in doc.units}
    assert matters == {m.code for m in doc.matters}
    gas = next(e for e in service.events("catalog.matter_published") if e.ticket_id == "GAS-001")
    assert gas.payload["default_urgency"] == "life_safety"
    listed = (await service.get("operator", "/catalog/matters")).json()
    assert len(listed) == len(doc.matters)


async def test_a_restart_does_not_load_the_same_catalog_again(service: Harness) -> None:
    before = len(service.events("catalog.matter_published"))
    async with service.running():
        await service.settle()
    assert len(service.events("catalog.matter_published")) == before


MATTER = {
    "code": "ROAD-099",
    "name": "道路标线不清",
    "keywords": ["标线", "斑马线"],
    "default_urgency": "general",
    "functional_only": True,
    "responsible": {"120101": "120101-urban"},
}


async def test_admin_creates_changes_and_retires_a_matter(service: Harness) -> None:
    assert (await service.post("operator", "/catalog/matters", MATTER)).status_code == 403
    r = await service.post("admin", "/catalog/matters", MATTER)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["responsible"]) == (1, {"120101": "120101-urban"})
    assert (await service.post("admin", "/catalog/matters", MATTER)).status_code == 409
    [published] = service.events("catalog.matter_published", "ROAD-099")
    assert published.payload["name"] == "道路标线不清"
    change = {k: v for k, v in MATTER.items() if k != "code"} | {"name": "道路标线模糊"}
    r = await service.call("admin", "PUT", "/catalog/matters/ROAD-099", json=change)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await service.call("admin", "DELETE", "/catalog/matters/ROAD-099")
    assert r.status_code == 200 and r.json()["active"] is False
    assert service.events("catalog.matter_published", "ROAD-099")[-1].payload["active"] is False


async def test_a_catalog_change_never_routes_functional_only_to_a_street(service: Harness) -> None:
    street = {**MATTER, "responsible": {"120101": "120101-street"}}
    r = await service.post("admin", "/catalog/matters", street)
    assert r.status_code == 409
    assert r.json()["rule"] == "Art 8: functional_only matters never go to street level"
    unknown = await service.post(
        "admin", "/catalog/matters", {**MATTER, "responsible": {"120101": "x"}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "matters.ROAD-099.responsible.120101"


async def test_a_change_takes_effect_on_its_date(service: Harness) -> None:
    effective = T0 + timedelta(days=1)
    change = {
        "name": "道路破损",
        "keywords": ["道路", "坑洼"],
        "default_urgency": "general",
        "responsible": {"120101": "city-urban"},
        "effective_from": effective.isoformat(),
    }
    r = await service.call("admin", "PUT", "/catalog/matters/URBAN-003", json=change)
    assert r.status_code == 200
    assert r.json()["responsible"]["120101"] == "120101-urban"  # not yet
    pending = (await service.get("admin", "/catalog/versions", pending="true")).json()
    assert pending["count"] == 1
    before = await service.register("URBAN-003", "120101", urgency="general")
    assert (await service.ticket(before))["unit_id"] == "120101-urban"
    service.clock.advance(timedelta(days=1, seconds=1))
    await until(
        lambda: any(
            e.payload.get("code") == "URBAN-003"
            for e in service.events("catalog.matter_published")[77:]
        ),
        "the scheduled version applied",
    )
    await service.settle()
    after = await service.register("URBAN-003", "120101", urgency="general")
    assert (await service.ticket(after))["unit_id"] == "city-urban"


async def test_an_idle_scheduler_only_looks_and_applies_a_version_once_it_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, applies = counted_due_loop(
        monkeypatch, catalog_versions, "next_version_at", "apply_due_versions", 0.01
    )
    async with Harness(tmp_path).running() as service:
        await until(lambda: looks.calls >= 5, "the idle polls")
        assert applies.calls == 0
        await schedule_a_version(service)
        assert applies.calls >= 1


async def test_an_idle_scheduler_looks_less_and_less_often_until_it_applies_a_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each look that finds nothing doubles the wait for the next, up to the most; applying
    a version starts over (an idle dispatch process woke every second for this)."""
    waits = recorded_idle_waits(monkeypatch, catalog_versions)
    async with Harness(tmp_path).running() as service:
        await waits_double_then_start_over(waits, until, lambda: schedule_a_version(service))


async def schedule_a_version(service: Harness) -> None:
    """A matter's change stored to take effect in an hour, and the hour passed."""
    change = {
        "name": "道路破损",
        "keywords": ["道路"],
        "default_urgency": "general",
        "responsible": {"120101": "city-urban"},
        "effective_from": (T0 + timedelta(hours=1)).isoformat(),
    }
    r = await service.call("admin", "PUT", "/catalog/matters/URBAN-003", json=change)
    assert r.status_code == 200
    published = len(service.events("catalog.matter_published"))
    service.clock.advance(timedelta(hours=1))
    await until(
        lambda: len(service.events("catalog.matter_published")) > published,
        "the scheduled version applied",
    )


async def test_units_are_managed_and_published(service: Harness) -> None:
    unit = {
        "unit_id": "120101-street2",
        "name": "和平区小白楼街道",
        "level": "street",
        "industry": "grassroots",
        "district": "120101",
        "parent_id": "120101-urban",
    }
    r = await service.post("admin", "/units", unit)
    assert r.status_code == 201, r.text
    [published] = service.events("catalog.unit_published", "120101-street2")
    assert (published.payload["level"], published.payload["parent_id"]) == (
        "street",
        "120101-urban",
    )
    bad_parent = await service.post(
        "admin", "/units", {**unit, "unit_id": "u2", "parent_id": "nope"}
    )
    assert bad_parent.status_code == 422
    in_use = await service.call("admin", "DELETE", "/units/city-water")
    assert in_use.status_code == 409 and "Art 7" in in_use.json()["rule"]
    retired = await service.call("admin", "DELETE", "/units/120101-street2")
    assert retired.status_code == 200 and retired.json()["active"] is False


async def test_export_and_import_round_trip(service: Harness) -> None:
    assert (await service.get("operator", "/catalog/export")).status_code == 403
    exported = (await service.get("admin", "/catalog/export")).json()
    assert len(exported["matters"]) >= 60 and len(exported["units"]) > 100
    heat = next(m for m in exported["matters"] if m["code"] == "HEAT-001")
    heat["keywords"].append("冰冷")
    doc = {"version": "2026.3", "matters": [heat], "units": []}
    r = await service.post("admin", "/catalog/import", doc)
    assert r.status_code == 201, r.text
    assert (r.json()["matters"], r.json()["applied_at"] is not None) == (1, True)
    assert (await service.post("admin", "/catalog/import", doc)).status_code == 409
    assert "冰冷" in (await service.get("admin", "/catalog/matters/HEAT-001")).json()["keywords"]
    street = {**heat, "functional_only": True, "responsible": {"120101": "120101-street"}}
    refused = await service.post(
        "admin", "/catalog/import", {"version": "2026.4", "matters": [street]}
    )
    assert refused.status_code == 409 and "Art 8" in refused.json()["rule"]
