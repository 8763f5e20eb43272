"""The console's pages in the browser: a unit refused another unit's ticket, the calendar
year grid, the live overdue board moving with the controllable clock, /docs offline, the
knowledge editor pointing at a screening refusal, and the citizen's web page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Session, System

LEAK = {
    "channel": "phone",
    "type": "complaint",
    "matter_code": "HOUSE-001",
    "district": "120101",
    "address": "和平区南京路某小区3号楼",
    "content": "楼上卫生间漏水到我家天花板",
    "requester": {"name": "李娜", "phone": "13920001111"},
}


def test_a_unit_opening_another_units_ticket_by_url_sees_403(
    system: System, people: Callable[[str], Session]
) -> None:
    ticket_id = system.register(LEAK)
    system.wait_state(ticket_id, "dispatched")

    other = people("unit_hexi_housing")
    response = other.goto(f"/tickets/{ticket_id}")
    assert response.status == 403
    assert "无权查看" in other.page.inner_text("h1")
    assert LEAK["content"] not in other.page.content()
    other.goto("/unit/inbox")
    assert ticket_id not in other.page.content()

    owner = people("unit_heping_housing")
    assert owner.goto(f"/tickets/{ticket_id}").status == 200
    assert LEAK["content"] in owner.page.content()


def test_the_calendar_year_grid_shows_official_overridden_and_provisional_days(
    system: System, people: Callable[[str], Session]
) -> None:
    admin = people("admin")
    admin.goto("/admin/calendar/2026")

    def cell(day: str) -> Any:
        return admin.page.locator(f"td[data-date='{day}']")

    expect(cell("2026-10-01")).to_have_class("day-official-off")  # National Day
    expect(cell("2026-09-20")).to_have_class("day-adjusted")  # a Sunday that is worked
    expect(cell("2026-06-03")).to_have_class("day-official-work")
    assert admin.page.locator("#year-provisional").count() == 0

    form = admin.page.locator("form[action='/admin/calendar/2026']")
    form.locator("[name=date]").fill("2026-06-03")
    form.locator("[name=working]").select_option("no")
    form.locator("[name=note]").fill("防汛应急调整")
    form.get_by_role("button", name="调整").click()
    expect(cell("2026-06-03")).to_have_class("day-official-off day-override")
    admin.shot("admin-calendar")

    admin.goto("/admin/calendar/2027")  # no official calendar yet
    assert admin.page.locator("#year-provisional").is_visible()
    expect(cell("2027-03-03")).to_have_class("day-official-work day-provisional")
    expect(cell("2027-10-01")).to_have_class("day-official-off day-provisional")


def test_the_overdue_board_counts_down_live_with_the_controllable_clock(
    system: System, people: Callable[[str], Session]
) -> None:
    ticket_id = system.register({**LEAK, "urgency": "life_safety", "content": "燃气管道漏气"})
    system.wait_state(ticket_id, "dispatched")  # accept within 15 minutes

    def clocked() -> bool:
        """The SLA has handled the dispatch too (its acceptance clock runs, the 5-minute
        dispatch clock has stopped): moved before that, the dispatch clock would go overdue
        and show as a second row of this ticket on the board."""
        r = system.api("operator", "GET", f"/api/v1/sla/tickets/{ticket_id}/clocks")
        found = {c["kind"]: c["state"] for c in r.json()["clocks"]} if r.status_code == 200 else {}
        return found.get("acceptance") == "running" and found.get("dispatch") != "running"

    system.eventually(clocked, "the SLA's clocks after the dispatch")

    agency = people("agency")
    agency.goto("/agency/board?status=all&urgency=life_safety")
    expect(agency.page.locator("body")).to_have_attribute("data-live-open", "1")
    row = agency.page.locator(f"#board tr[data-ticket='{ticket_id}']")
    assert row.count() == 0  # not at risk yet

    def advance(minutes: int) -> None:
        moved = system.api("admin", "PUT", "/api/v1/clock", json={"advance_seconds": minutes * 60})
        assert moved.status_code == 200, moved.text

    advance(12)  # past 75 % of the 15 minutes: sla.warning, pushed to the open board
    expect(row).to_be_visible()
    countdown = row.locator(".countdown")
    expect(countdown).to_contain_text("剩余 2分")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # ticking on the platform's clock
    agency.shot("agency-board")

    advance(4)  # past the deadline: sla.overdue, pushed again
    expect(row.locator(".badge.red")).to_have_text("已超时")
    expect(countdown).to_contain_text("已超时 1分")
    expect(countdown).to_have_class("countdown late")


def test_the_api_docs_render_without_internet(system: System, browser: Any) -> None:
    context = browser.new_context()
    outside: list[str] = []

    def only_this_host(route: Any) -> None:
        if route.request.url.startswith(system.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_host)
    page = context.new_page()
    page.goto(f"{system.url}/docs")
    # Swagger UI renders 120 operations: slow on a busy 2-core machine
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("12345", timeout=60_000)
    expect(page.locator(".opblock-tag").first).to_be_visible()
    assert outside == []
    context.close()


def test_the_knowledge_editor_marks_a_screening_refusal_where_it_is(
    system: System, people: Callable[[str], Session]
) -> None:
    unit = people("unit_heping_housing")
    unit.goto("/knowledge/entries/new")
    unit.page.get_by_label("标题").fill("物业维修资金使用答复口径")
    unit.page.get_by_label("正文").fill("业主可向区住建委申请使用维修资金，联系人手机13812345678。")
    unit.page.get_by_role("button", name="保存").click()
    mark = unit.page.locator("#findings [data-field=body] mark.refused")
    expect(mark).to_have_text("13812345678")
    expect(mark).to_have_attribute("data-kind", "mobile")
    assert "正文 第 23 字起：手机号" in unit.page.inner_text("#findings")
    unit.shot("knowledge-screening")


def test_a_citizen_submits_on_the_phone_page_and_looks_up_progress(
    system: System, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{system.url}/public")
    page.locator("[name=type]").select_option("complaint")
    page.locator("[name=matter_code]").select_option("HOUSE-001")
    page.get_by_label("诉求内容").fill("小区电梯经常停运，物业不处理")
    page.get_by_label("匿名").check()
    page.get_by_role("button", name="提交").click()
    assert page.locator(".field-error").count() >= 1  # Art 5: a complaint needs a name

    page.get_by_label("实名").check()
    page.get_by_label("姓名").fill("王芳")
    page.get_by_label("手机号", exact=True).first.fill("13622223333")
    page.get_by_role("button", name="提交").click()
    ticket_id = page.locator("#submitted-id").inner_text()
    page.screenshot(path=str(_shots() / "citizen-phone.png"), full_page=True)

    lookup = page.locator("form[action='/public/lookup']")
    lookup.get_by_label("工单号").fill(ticket_id)
    lookup.get_by_label("手机号").fill("13622223333")
    lookup.get_by_role("button", name="查询").click()
    expect(page.locator("#lookup-result")).to_contain_text(ticket_id)

    lookup = page.locator("form[action='/public/lookup']")
    lookup.get_by_label("工单号").fill(ticket_id)
    lookup.get_by_label("手机号").fill("13600000000")  # not the phone it was filed with
    lookup.get_by_role("button", name="查询").click()
    assert page.locator("#lookup-result").count() == 0
    context.close()


def _shots() -> Any:
    from tests.e2e.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def test_the_operator_answers_on_the_spot_citing_a_knowledge_entry(
    system: System, people: Callable[[str], Session]
) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(microsecond=0)
    made = system.api(
        "unit_heping_housing",
        "POST",
        "/api/v1/knowledge/entries",
        json={
            "kind": "answer_script",
            "title": "住宅专项维修资金使用答复口径",
            "body": "住宅共用部位维修可申请使用专项维修资金，由业主大会表决后向区住建委申请。",
            "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=150)).isoformat(),
            "publish": True,
        },
    )
    assert made.status_code == 201, made.text
    entry_id = made.json()["entry_id"]
    earlier = system.register({**LEAK, "requester": {"name": "赵敏", "phone": "13700001234"}})

    operator = people("operator")
    page = operator.page
    operator.goto("/operator")
    page.get_by_label("电话", exact=True).fill("13700001234")
    expect(page.locator("#caller-history")).to_contain_text(earlier)  # audited by intake
    page.get_by_label("诉求内容").fill("想咨询住宅专项维修资金怎么申请使用")
    cite = page.locator(f"#knowledge-answers input[value='{entry_id}']")
    cite.check()  # the side panel found the entry while the content was typed
    operator.shot("operator-knowledge-panel")
    page.locator("[name=matter_code]").select_option("HOUSE-001")
    page.locator("details summary").click()
    page.get_by_label("答复内容").fill("可由业主大会表决后向区住建委申请使用专项维修资金。")
    page.get_by_role("button", name="登记（Alt+S）").click()
    expect(page.locator("#ticket-status")).to_have_text("已直接答复")
    expect(page.locator(".ok")).to_contain_text(entry_id)


def test_the_operator_registers_a_call_with_the_keyboard_alone(
    system: System, people: Callable[[str], Session]
) -> None:
    operator = people("operator")
    page = operator.page
    keys = page.keyboard
    operator.goto("/operator")
    # The channel field has the focus: a call starts there. The browser applies `autofocus`
    # when it next renders, which can come after the load event on a busy machine.
    expect(page.locator("select[name=channel]")).to_be_focused()
    for _ in range(3):  # channel → type → urgency → content
        keys.press("Tab")
    keys.insert_text("请问办理居住证需要带哪些材料")
    for _ in range(4):  # → district → street → address → matter
        keys.press("Tab")
    keys.press("ArrowDown")  # the first matter of the catalog
    keys.press("Alt+s")  # 登记（Alt+S）
    expect(page.locator("#ticket-id")).to_have_text(re.compile(r"TJ\d{14}"))
    keys.press("Alt+n")  # 登记下一个（Alt+N）
    expect(page.locator("select[name=channel]")).to_be_focused()


def test_an_appointed_social_supervisor_reads_statistics_and_submits_an_opinion(
    system: System, people: Callable[[str], Session]
) -> None:
    supervisor = people("supervisor")
    assert supervisor.goto("/supervisor").status == 403  # Art 22: not appointed yet

    govservice = people("govservice")  # the government-services department appoints
    govservice.goto("/govservice/supervisors")
    govservice.page.get_by_label("登录名").fill("supervisor")
    govservice.page.get_by_label("姓名").fill("李明")
    govservice.page.get_by_label("身份（如人大代表）").fill("市人大代表")
    govservice.page.get_by_role("button", name="聘任").click()
    expect(govservice.page.locator("#team")).to_contain_text("市人大代表")

    supervisor.goto("/supervisor")
    assert "登记诉求" in supervisor.page.inner_text("main")
    supervisor.page.get_by_label("主题").fill("夜间噪声投诉办理偏慢")
    supervisor.page.get_by_label("内容").fill("建议对夜间施工噪声类诉求加快响应")
    supervisor.page.get_by_role("button", name="提交").click()
    expect(supervisor.page.locator("main")).to_contain_text("夜间噪声投诉办理偏慢")
    assert supervisor.goto("/agency/board").status == 403  # not the agency's board


def test_the_admin_edits_a_catalog_matter_and_sees_a_refusal_at_its_field(
    system: System, people: Callable[[str], Session]
) -> None:
    admin = people("admin")
    admin.goto("/admin/catalog?q=MKT-001")
    admin.page.locator("#catalog a", has_text="编辑").first.click()
    period = admin.page.locator("#matter-form [name=statutory_period]")
    period.fill("十个工作日")
    admin.page.get_by_role("button", name="保存").click()
    refusal = admin.page.locator("#matter-form .field-error[data-field=statutory_period]")
    expect(refusal).to_contain_text("时限格式不正确")
    expect(period).to_have_value("十个工作日")  # what was typed stays to be corrected
    period.fill("15wd")
    admin.page.get_by_role("button", name="保存").click()
    expect(admin.page.locator("#catalog")).to_contain_text("15wd")
    matter = system.api("admin", "GET", "/api/v1/dispatch/catalog/matters/MKT-001").json()
    assert matter["statutory_period"] == "15wd"
    assert matter["responsible"], "the units responsible are kept"


def test_the_admin_adds_a_policy_version_and_sees_a_refusal_at_its_field(
    system: System, people: Callable[[str], Session]
) -> None:
    admin = people("admin")
    admin.goto("/admin/policy?service=dispatch")
    form = admin.page.locator("#policy-form")
    settings = form.locator("[name=settings]")
    current = settings.input_value()
    form.locator("[name=effective_from]").fill("2030-01-01T00:00")
    settings.fill(current.replace('"suggestion_threshold": 0.6', '"suggestion_threshold": 1.5'))
    admin.page.get_by_role("button", name="保存新版本").click()
    expect(form.locator(".field-error[data-field=settings]")).to_contain_text("派单建议阈值")
    settings.fill(current.replace('"suggestion_threshold": 0.6', '"suggestion_threshold": 0.7'))
    admin.page.get_by_role("button", name="保存新版本").click()
    expect(admin.page.locator("section", has_text="全部版本")).to_contain_text("2030-01-01 00:00")
    versions = system.api("admin", "GET", "/api/v1/dispatch/policy").json()["versions"]
    assert [v["settings"]["suggestion_threshold"] for v in versions][-1] == 0.7
