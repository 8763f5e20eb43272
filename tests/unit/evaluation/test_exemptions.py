"""Exemptions (Art 24): an explanation with evidence files kept by the service, limits on
those files, and the agency's decision."""

from __future__ import annotations

from pathlib import Path

from tests.unit.evaluation.conftest import Evaluation, handled

PDF = ("files", ("回执.pdf", b"%PDF-1.4 receipt", "application/pdf"))
PHOTO = ("files", ("现场.jpg", b"\xff\xd8\xff\xe0photo", "image/jpeg"))


async def dissatisfied(service: Evaluation, tid: str) -> None:
    await handled(service, tid)
    r = await service.call(
        "POST", f"/revisits/{tid}", json={"rating": "dissatisfied", "resolved": False}
    )
    assert r.status_code == 200, r.text


async def file(service: Evaluation, tid: str, who: str = "unit_water", files=None, **data):  # type: ignore[no-untyped-def]
    form = {"ticket_id": tid, "explanation": "已两次上门，诉求超出政策范围", **data}
    return await service.call(
        "POST", "/exemptions", who, data=form, files=files if files is not None else [PDF, PHOTO]
    )


async def test_the_unit_files_evidence_the_service_keeps(service: Evaluation) -> None:
    await dissatisfied(service, "TJ1")
    r = await file(service, "TJ1")
    assert r.status_code == 201, r.text
    exemption = r.json()
    assert exemption["state"] == "pending" and exemption["round"] == 1
    assert sorted(f["filename"] for f in exemption["files"]) == ["回执.pdf", "现场.jpg"]
    [filed] = service.emitted("evaluation.exemption_filed", "TJ1")
    assert filed.payload["file_count"] == 2
    # kept on disk under the configured folder, under generated names
    stored = sorted(p for p in service.files.rglob("*") if p.is_file())
    assert len(stored) == 2 and all(p.parent.name == exemption["exemption_id"] for p in stored)
    pdf = next(f for f in exemption["files"] if f["filename"] == "回执.pdf")
    url = f"/exemptions/{exemption['exemption_id']}/files/{pdf['file_id']}"
    download = await service.call("GET", url, "agency")
    assert download.status_code == 200 and download.content == b"%PDF-1.4 receipt"
    assert (await service.call("GET", url, "unit_hexi_housing")).status_code == 403


async def test_evidence_limits_are_enforced_and_leave_nothing_behind(service: Evaluation) -> None:
    await dissatisfied(service, "TJ2")
    too_big = ("files", ("big.pdf", b"x" * 2049, "application/pdf"))  # limit set to 2048
    cases = {
        "wrong type": [("files", ("run.exe", b"MZ", "application/x-msdownload"))],
        "too big": [PDF, too_big],
        "empty file": [("files", ("empty.pdf", b"", "application/pdf"))],
        "too many": [PDF] * 11,
    }
    for case, files in cases.items():
        r = await file(service, "TJ2", files=files)
        assert r.status_code == 422, (case, r.text)
        assert r.json()["errors"][0]["field"] == "files", case
    r = await service.call(
        "POST", "/exemptions", "unit_water", data={"ticket_id": "TJ2", "explanation": "x"}
    )
    assert r.status_code == 422  # at least one evidence file
    r = await file(service, "TJ2", explanation="   ")
    assert r.status_code == 422
    assert [p for p in service.files.rglob("*") if p.is_file()] == []
    assert service.emitted("evaluation.exemption_filed") == []
    assert (await file(service, "TJ2")).status_code == 201  # still possible afterwards


async def test_only_the_rated_unit_files_and_only_for_a_dissatisfied_rating(
    service: Evaluation,
) -> None:
    await dissatisfied(service, "TJ3")
    assert (await file(service, "TJ3", who="unit_hexi_housing")).status_code == 403
    assert (await file(service, "TJ3", who="agency")).status_code == 403
    await handled(service, "TJ4")
    await service.call("POST", "/revisits/TJ4", json={"rating": "satisfied", "resolved": True})
    r = await file(service, "TJ4")
    assert r.status_code == 409 and "Art 24" in r.json()["rule"]
    assert (await file(service, "TJ3")).status_code == 201
    again = await file(service, "TJ3")
    assert again.status_code == 409  # one explanation per rating


async def test_the_agency_accepts_or_rejects_with_a_reason(service: Evaluation) -> None:
    await dissatisfied(service, "TJ5")
    exemption_id = (await file(service, "TJ5")).json()["exemption_id"]
    path = f"/exemptions/{exemption_id}/decision"
    assert (
        await service.call("POST", path, "unit_water", json={"decision": "accepted", "reason": "x"})
    ).status_code == 403
    assert (await service.call("POST", path, json={"decision": "accepted"})).status_code == 422
    r = await service.call(
        "POST", path, json={"decision": "rejected", "reason": "材料不足以证明已尽责"}
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    again = await service.call("POST", path, json={"decision": "accepted", "reason": "x"})
    assert again.status_code == 409
    [decided] = service.emitted("evaluation.exemption_decided", "TJ5")
    assert decided.payload["decision"] == "rejected"
    # a rejected exemption leaves the rating counted
    await service.call(
        "POST", "/revisits/TJ5/decision", json={"decision": "close", "reason": "结案"}
    )
    assert (await service.call("GET", "/revisits/TJ5")).json()["counted_in_satisfaction"] is True


async def test_lists_are_scoped_to_the_unit(service: Evaluation) -> None:
    await dissatisfied(service, "TJ6")
    await file(service, "TJ6")
    assert (await service.call("GET", "/exemptions?state=pending")).json()["count"] == 1
    assert (await service.call("GET", "/exemptions", "unit_water")).json()["count"] == 1
    assert (await service.call("GET", "/exemptions", "unit_hexi_housing")).json()["count"] == 0
    assert (
        await service.call("GET", "/exemptions?unit_id=city-water", "unit_hexi_housing")
    ).status_code == 403


def test_files_folder_defaults_under_var(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.evaluation.settings import EvaluationSettings

    monkeypatch.delenv("HOTLINE_EVALUATION_FILES_DIR", raising=False)
    assert EvaluationSettings().files_dir == Path("var/evaluation-files")
