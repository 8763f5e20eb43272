"""The work queues and admin pages in the browser: the agency dispatches a catalog gap by
hand, the industry authority decides a determination, flagged tickets and hotspots reach the
agency's pages, a unit files an exemption with an evidence file that the agency opens and
decides, and the admin manages users. Data the page under test does not own is set up
through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Session, System

D = "/api/v1/dispatch"


def call(**more: Any) -> dict[str, Any]:
    return {
        "channel": "phone",
        "type": "complaint",
        "requester": {"name": "孙磊", "phone": "13920003333"},
        **more,
    }


def unclear_call_in_a_district_without_a_unit(system: System) -> str:
    """A matter the catalog gives a unit only in 和平区, called in from 河西区 with an unclear
    text: it waits in the manual queue."""
    matter = {
        "code": "ROAD-097",
        "name": "道路标线不清",
        "keywords": ["标线"],
        "default_urgency": "general",
        "responsible": {"120101": "120101-urban"},
    }
    made = system.api("admin", "POST", f"{D}/catalog/matters", json=matter)
    assert made.status_code in (201, 409), made.text
    body = call(matter_code="ROAD-097", district="120103", content="请帮忙看看这个情况")
    ticket_id: str = system.eventually(
        lambda: (
            system.api("operator", "POST", "/api/v1/intake/tickets", json=body)
            .json()
            .get("ticket_id")
        ),
        "intake knows ROAD-097",
    )
    system.wait_state(ticket_id, "pending_dispatch")
    return ticket_id


def test_the_agency_dispatches_from_the_manual_queue_by_hand(
    system: System, people: Callable[[str], Session]
) -> None:
    ticket_id = unclear_call_in_a_district_without_a_unit(system)

    agency = people("agency")
    agency.reload_until("/agency/dispatch", ticket_id)
    row = agency.page.locator("#queue tr", has_text=ticket_id)
    expect(row).to_contain_text("河西区")
    row.get_by_role("link", name=ticket_id).click()
    form = agency.page.locator("#form-dispatch")
    form.locator("[name=unit_id]").select_option("120103-urban")
    form.get_by_label("说明").fill("河西区道路标线归区城管委")
    form.get_by_role("button", name="派单").click()
    expect(agency.page.locator("#done")).to_have_text("已派单")
    expect(agency.page.locator("#ticket-state")).to_have_text("已派单")
    agency.goto("/agency/dispatch")
    assert ticket_id not in agency.page.content()


def test_the_agency_dispatches_a_catalog_gap_from_the_determination_queue_with_its_reason(
    system: System, people: Callable[[str], Session]
) -> None:
    # no unit in the catalog for this matter: the system refers it for determination
    body = call(matter_code="OTHER-001", district="120101", content="两区交界处楼房外墙开裂")
    ticket_id = system.register(body)
    system.wait_state(ticket_id, "pending_determination")

    agency = people("agency")
    agency.reload_until("/agency/determinations", ticket_id)
    row = agency.page.locator("#queue tr", has_text=ticket_id)
    expect(row).to_contain_text("目录未列本区承办单位")
    row.get_by_role("link", name=ticket_id).click()
    form = agency.page.locator("#form-dispatch")
    form.locator("[name=unit_id]").select_option("120101-housing")
    form.get_by_role("button", name="派单").click()  # no reason: refused beside the field
    expect(agency.page.locator("#form-dispatch [data-field=note]")).to_contain_text(
        "须写明派给该单位的理由"
    )
    form = agency.page.locator("#form-dispatch")
    expect(form.locator("[name=unit_id]")).to_have_value("120101-housing")
    form.get_by_label("说明").fill("楼房产权登记在和平区，由区住建委办理")
    form.get_by_role("button", name="派单").click()
    expect(agency.page.locator("#done")).to_have_text("已派单")
    expect(agency.page.locator("#ticket-state")).to_have_text("已派单")


def test_the_industry_authority_decides_a_disputed_case_of_its_industry(
    system: System, people: Callable[[str], Session]
) -> None:
    ticket_id = unclear_call_in_a_district_without_a_unit(system)
    referral = {
        "reason": "两区城管委对标线维护职责有争议",
        "kind": "same_industry",
        "candidate_unit_ids": ["120103-urban", "120101-urban"],
    }
    referred = system.api("agency", "POST", f"{D}/tickets/{ticket_id}/refer", json=referral)
    assert referred.status_code == 200, referred.text

    authority = people("authority_urban")
    authority.reload_until("/agency/determinations", ticket_id)
    row = authority.page.locator("#queue tr", has_text=ticket_id)
    expect(row).to_contain_text("同行业跨区")
    row.get_by_role("link", name=ticket_id).click()
    form = authority.page.locator("#form-determination")
    form.locator("[name=lead_unit_id]").select_option("120103-urban")
    form.get_by_role("button", name="确定").click()  # no reason: refused beside the field
    expect(authority.page.locator("#form-determination [data-field=reason]")).to_be_visible()
    form = authority.page.locator("#form-determination")
    form.locator("[name=lead_unit_id]").select_option("120103-urban")
    form.get_by_label("理由").fill("标线位于河西区辖区道路")
    form.get_by_role("button", name="确定").click()
    expect(authority.page.locator("#done")).to_have_text("已确定承办单位")
    expect(authority.page.locator("#ticket-state")).to_have_text("已派单")


def test_flagged_tickets_and_hotspots_reach_the_agencys_pages(
    system: System, people: Callable[[str], Session]
) -> None:
    flagged = system.register(
        call(matter_code="HOUSE-001", district="120102", content="物业拖欠维修，业主准备集体上访")
    )
    threshold = system.api("agency", "GET", "/api/v1/evaluation/policy").json()["in_force"][
        "settings"
    ]["hotspot"]["threshold"]
    burst = [
        system.register(
            call(matter_code="ROAD-004", district="120105", content=f"{n}号门口违章停车")
        )
        for n in range(threshold)
    ]

    agency = people("agency")
    agency.reload_until("/agency/flagged", flagged)
    row = agency.page.locator("#queue tr", has_text=flagged)
    expect(row).to_contain_text("集体上访")
    expect(row).to_contain_text("河东区")
    agency.reload_until("/agency/hotspots", "ROAD-004")
    spot = agency.page.locator("#queue tr", has_text="ROAD-004")
    expect(spot).to_contain_text("河北区")
    expect(spot).to_contain_text(str(threshold))
    spot.get_by_role("link").first.click()
    assert agency.page.locator("#ticket-id").inner_text() in burst


def dissatisfied(system: System) -> str:
    """A ticket 和平区住建委 handled and whose requester was dissatisfied."""
    ticket_id = system.register(
        call(matter_code="HOUSE-001", district="120101", content="阳台顶棚漏水，物业维修后仍漏")
    )
    system.wait_state(ticket_id, "dispatched")
    unit = "unit_heping_housing"
    accepted = system.api(unit, "POST", f"{D}/tickets/{ticket_id}/accept")
    assert accepted.status_code == 200, accepted.text
    now = system.api("agency", "GET", "/api/v1/clock").json()["now"]
    reply = {
        "policy_basis": "《天津市物业管理条例》第五十六条",
        "progress": "已现场勘查",
        "result": "已督促物业重新做防水",
        "contacted_at": now,
        "process": "接单当日到场，督促物业维修",
        "feedback": "诉求人表示知晓",
    }
    done = system.api(unit, "POST", f"{D}/tickets/{ticket_id}/complete", json=reply)
    assert done.status_code == 200, done.text
    revisit = f"/api/v1/evaluation/revisits/{ticket_id}"
    system.eventually(
        lambda: system.api("operator", "GET", revisit).status_code == 200, "the revisit"
    )
    rated = system.api(
        "operator", "POST", revisit, json={"rating": "dissatisfied", "resolved": False}
    )
    assert rated.status_code in (200, 201), rated.text
    return ticket_id


def test_a_unit_files_an_exemption_with_evidence_that_the_agency_opens_and_decides(
    system: System, people: Callable[[str], Session]
) -> None:
    ticket_id = dissatisfied(system)

    unit = people("unit_heping_housing")
    unit.goto("/evaluation/exemptions")
    form = unit.page.locator("#exemption-form")
    form.get_by_label("工单号").fill(ticket_id)
    form.get_by_label("情况说明").fill("漏水源于楼上住户私改管道，已告知诉求人")
    form.get_by_role("button", name="提交免责申请").click()  # no evidence: refused at the field
    expect(unit.page.locator("#exemption-form [data-field=files]")).to_be_visible()
    expect(unit.page.locator("#exemption-form [name=explanation]")).to_have_value(
        "漏水源于楼上住户私改管道，已告知诉求人"
    )
    evidence = b"%PDF-1.4\n% site inspection record\n"
    unit.page.locator("#exemption-form [name=files]").set_input_files(
        [{"name": "现场勘查记录.pdf", "mimeType": "application/pdf", "buffer": evidence}]
    )
    unit.page.locator("#exemption-form").get_by_role("button", name="提交免责申请").click()
    expect(unit.page.locator("#done")).to_be_visible()
    expect(unit.page.locator("#exemptions tr", has_text=ticket_id)).to_contain_text("待审核")

    agency = people("agency")
    agency.goto("/evaluation/exemptions")
    row = agency.page.locator("#exemptions tr", has_text=ticket_id)
    link = row.get_by_role("link", name="现场勘查记录.pdf")
    opened = agency.page.request.get(system.url + str(link.get_attribute("href")))
    assert opened.status == 200 and opened.body() == evidence
    assert opened.headers["content-security-policy"] == "sandbox"
    agency.shot("evaluation-exemptions")
    row.get_by_label("审核结果").select_option("accepted")
    row.get_by_label("理由").fill("勘查记录证明漏水源于楼上住户")
    row.get_by_role("button", name="确定").click()
    expect(agency.page.locator("#exemptions tr", has_text=ticket_id)).to_contain_text("已采纳")


def sign_in_as(session: Session, username: str, password: str) -> None:
    page = session.page
    page.goto(f"{session.system.url}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


def test_the_admin_adds_binds_resets_and_disables_a_user(
    system: System, people: Callable[[str], Session], browser: Any
) -> None:
    admin = people("admin")
    admin.goto("/admin/users")
    expect(admin.page.locator("#users")).to_contain_text("unit_water")
    add = admin.page.locator("#add-user")
    add.get_by_label("用户名").fill("hexi_clerk")
    add.get_by_label("姓名").fill("河西区住建委 文员 陈静")
    add.locator("[name=role]").select_option("unit")
    add.get_by_label("初始密码（至少 10 位）").fill("first-password-1")
    add.get_by_role("button", name="新增").click()  # a unit user without its unit: refused
    expect(admin.page.locator("#add-user [data-field=unit_id]")).to_have_text(
        "承办单位用户须绑定所属单位"
    )
    add = admin.page.locator("#add-user")
    expect(add.get_by_label("用户名")).to_have_value("hexi_clerk")
    add.get_by_label("初始密码（至少 10 位）").fill("first-password-1")
    add.locator("[name=unit_id]").fill("120103-housing")
    add.get_by_role("button", name="新增").click()
    expect(admin.page.locator("[role=status]")).to_have_text("已新增用户")

    bind = admin.page.locator("#bind-form")
    bind.locator("[name=unit_id]").fill("120101-housing")
    bind.get_by_role("button", name="保存绑定").click()
    expect(admin.page.locator("[role=status]")).to_have_text("已保存绑定")
    reset = admin.page.locator("#password-form")
    reset.get_by_label("新密码（至少 10 位）").fill("second-password-2")
    reset.get_by_label("再次输入").fill("second-password-2")
    reset.get_by_role("button", name="重置密码").click()
    expect(admin.page.locator("[role=status]")).to_contain_text("密码已重置")

    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    try:
        clerk = Session(system, context)
        sign_in_as(clerk, "hexi_clerk", "second-password-2")
        assert clerk.page.url.endswith("/unit/inbox"), clerk.page.url
        expect(clerk.page.locator("header .who")).to_contain_text("120101-housing")

        admin.page.locator("#status-form").get_by_role(
            "button", name="停用（立即结束其所有登录）"
        ).click()
        expect(admin.page.locator("h1 .badge")).to_have_text("已停用")
        clerk.page.reload()  # the disabled user's session has ended
        assert "/login" in clerk.page.url
        sign_in_as(clerk, "hexi_clerk", "second-password-2")
        expect(clerk.page.locator("[role=alert]")).to_contain_text("用户名或密码错误")
    finally:
        context.close()

    # an industry authority is bound to its industry (Art 8)
    admin.goto("/admin/users")
    add = admin.page.locator("#add-user")
    add.get_by_label("用户名").fill("authority_water")
    add.get_by_label("姓名").fill("市水务局")
    add.locator("[name=role]").select_option("authority")
    add.get_by_label("初始密码（至少 10 位）").fill("third-password-3")
    add.locator("[name=industry]").fill("water")
    add.get_by_role("button", name="新增").click()
    expect(admin.page.locator("#bind-form [name=industry]")).to_have_value("water")
    admin.goto("/admin/users?role=authority")
    expect(admin.page.locator("#users tr", has_text="authority_water")).to_contain_text("water")
    admin.goto("/admin/users")
    admin.shot("admin-users")
