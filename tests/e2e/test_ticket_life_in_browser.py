"""A ticket's whole life in the browser only, each person at their own screen: the operator
registers it, the unit asks to return it, the agency refuses the return, the unit accepts,
asks for an extension and replies; the revisit is dissatisfied, the agency sends it back;
round two; the final rating."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.e2e.conftest import Session, System


def test_a_ticket_lives_its_whole_life_in_the_browser(
    system: System, people: Callable[[str], Session]
) -> None:
    # the operator registers a call, helped by the side panel
    operator = people("operator")
    page = operator.page
    operator.goto("/operator")
    page.locator("[name=type]").select_option("complaint")
    page.get_by_label("诉求内容").fill("楼道墙体开裂渗水已经两个月，物业一直不修")
    page.locator("[name=district]").select_option("120101")
    page.get_by_label("街道（乡镇）").fill("劝业场街道")
    page.get_by_label("详细地址").fill("滨江道某小区5号楼2门")
    page.locator("#assist h3").first.wait_for()  # the side panel answered the typing
    page.locator("[name=matter_code]").select_option("HOUSE-001")
    page.get_by_label("姓名", exact=True).fill("周强")
    page.get_by_label("电话", exact=True).fill("13820005678")
    operator.shot("operator-workbench")
    page.get_by_role("button", name="登记（Alt+S）").click()
    ticket_id = page.locator("#ticket-id").inner_text()
    assert ticket_id.startswith("TJ")
    page.get_by_label("满意", exact=True).check()
    page.get_by_role("button", name="记录评价").click()
    page.locator("#done, .ok", has_text="已记录话务评价：满意").first.wait_for()
    operator.shot("operator-registered")

    # the unit finds it in its inbox, with a countdown, and asks to return it
    unit = people("unit_heping_housing")
    unit.reload_until("/unit/inbox", ticket_id)
    countdown = unit.page.locator("#inbox tr", has_text=ticket_id).locator(".countdown")
    assert countdown.inner_text().startswith("剩余")
    unit.shot("unit-inbox")
    unit.page.get_by_role("link", name=ticket_id).click()
    form = unit.page.locator("#form-return")
    form.get_by_role("button", name="申请退回").click()  # no reason, no basis: refused
    assert unit.page.locator("#form-return .problem").is_visible()
    unit.page.locator("#form-return").get_by_label("退回理由").fill("墙体开裂属开发商保修范围")
    unit.page.locator("#form-return").get_by_label("依据").fill("商品房保修规定")
    unit.page.locator("#form-return").get_by_role("button", name="申请退回").click()
    unit.page.locator("#done, .ok", has_text="已申请退回").first.wait_for()

    # the agency cannot approve (the catalog names the unit) and refuses the return
    agency = people("agency")
    agency.reload_until("/agency/returns", ticket_id)
    agency.page.get_by_role("link", name=ticket_id).click()
    agency.page.locator("#form-return_approve").get_by_role("button", name="同意退回").click()
    refusal = agency.page.locator("#form-return_approve .problem")
    assert "Art 10 (1)" in refusal.inner_text()
    agency.page.locator("#form-return_reject").get_by_label("驳回理由").fill(
        "房屋质量问题属区住建委职责"
    )
    agency.page.locator("#form-return_reject").get_by_role("button", name="驳回退回").click()
    agency.page.locator("#done, .ok", has_text="已驳回退回").first.wait_for()

    # the unit accepts, asks for an extension, which the agency grants
    unit.goto(f"/tickets/{ticket_id}")
    unit.page.locator("#form-accept").get_by_role("button", name="接单").click()
    unit.page.locator("#done", has_text="已接单").wait_for()
    ext = unit.page.locator("#form-extension")
    ext.get_by_label("延期理由").fill("需协调开发商与施工单位共同勘查")
    ext.get_by_label("目前进展").fill("已现场勘查")
    ext.get_by_label("采取措施").fill("督促物业先做临时防水")
    ext.get_by_role("button", name="申请延期").click()
    unit.page.locator("#done, .ok", has_text="已申请延期").first.wait_for()
    agency.reload_until("/agency/extensions", ticket_id)  # the review queue
    agency.page.get_by_role("link", name=ticket_id).click()
    agency.page.locator("#form-extension_approve").get_by_label("向诉求人解释的内容").fill(
        "已电话告知诉求人延期原因和新的办结时间"
    )
    agency.page.locator("#form-extension_approve").get_by_role("button", name="同意延期").click()
    agency.page.locator("#done, .ok", has_text="已同意延期").first.wait_for()
    assert agency.page.locator("#clocks tr[data-kind=completion] .countdown").count() == 1
    agency.shot("ticket-page-agency")

    # the unit records how it explained the extension to the requester (Art 12)
    unit.reload_until(f"/tickets/{ticket_id}", "向诉求人解释延期")
    told = unit.page.locator("#form-extension_explanation")
    told.get_by_label("告知的办理进度").fill("已完成现场勘查")
    told.get_by_label("告知的解决措施").fill("协调开发商维修，物业先做临时防水")
    told.get_by_label("解释内容").fill("电话告知周先生延期原因和新的办结时间，对方表示理解")
    told.get_by_role("button", name="记录解释").click()
    unit.page.locator("#done", has_text="已记录向诉求人的解释").wait_for()
    assert unit.page.locator("#explained").is_visible()

    # the unit replies with every Art 13 element
    def reply(result: str) -> None:
        form = unit.page.locator("#form-complete")
        form.get_by_label("政策依据").fill("《天津市物业管理条例》第五十六条")
        form.get_by_label("工作进展").fill("已联系物业与施工单位现场勘查")
        form.get_by_label("办理结果").fill(result)
        form.get_by_label("办理过程").fill("接单后当日到场勘查，督促物业维修")
        form.get_by_label("诉求人反馈").fill("诉求人表示知晓")
        form.get_by_role("button", name="提交办结答复").click()
        unit.page.wait_for_load_state()
        assert unit.page.locator("#done").count() == 1, unit.page.inner_text("main")[:1500]
        assert unit.page.locator("#done").inner_text() == "已办结答复"

    unit.goto(f"/tickets/{ticket_id}")
    reply("已督促物业完成墙体修补")
    unit.shot("ticket-page-unit")

    # the revisit: dissatisfied; the agency sends it back for re-handling
    operator.reload_until("/evaluation/revisits", ticket_id)
    operator.page.get_by_role("link", name=ticket_id).click()
    revisit = operator.page.locator("#form-revisit")
    revisit.locator("[name=rating]").select_option("dissatisfied")
    revisit.locator("[name=resolved]").select_option("no")
    revisit.get_by_label("回访记录").fill("仍有渗水")
    revisit.get_by_role("button", name="记录回访").click()
    operator.page.locator("#done, .ok", has_text="已记录回访评价").first.wait_for()
    agency.reload_until(f"/tickets/{ticket_id}", "是否退回再次办理")
    decision = agency.page.locator("#form-revisit_decision")
    decision.locator("[name=decision]").select_option("send_back")
    decision.get_by_label("理由").fill("渗水问题未解决")
    decision.get_by_role("button", name="确定").click()
    agency.page.locator("#done, .ok", has_text="已作出回访处理决定").first.wait_for()

    # round two: the same unit accepts again and replies
    unit.reload_until(f"/tickets/{ticket_id}", "第 2 轮办理")
    unit.page.locator("#form-accept").get_by_role("button", name="接单").click()
    unit.page.locator("#done", has_text="已接单").wait_for()
    reply("已完成外墙防水施工，渗水消除")

    # the final rating closes it; the timeline shows the whole life in order
    operator.reload_until(f"/tickets/{ticket_id}", "记录回访评价")
    revisit = operator.page.locator("#form-revisit")
    revisit.locator("[name=rating]").select_option("basically_satisfied")
    revisit.get_by_role("button", name="记录回访").click()
    operator.page.locator("#done, .ok", has_text="已记录回访评价").first.wait_for()
    assert operator.page.locator("#rating").inner_text() == "基本满意"
    assert operator.page.locator("#form-revisit").count() == 0
    agency.reload_until(f"/tickets/{ticket_id}", "基本满意")
    assert agency.page.locator("#form-revisit_decision").count() == 0  # final
    types = agency.page.locator("#timeline li").evaluate_all(
        "items => items.map(i => i.dataset.type)"
    )
    for milestone in (
        "ticket.registered",
        "ticket.return_requested",
        "ticket.return_rejected",
        "sla.extension_approved",
        "evaluation.rehandle_requested",
        "ticket.rehandling_started",
    ):
        assert milestone in types, (milestone, types)
    assert types.count("ticket.completed") == 2
    agency.shot("ticket-timeline")

    # the evaluation page: the unit's three rates as a chart; a bar lists its tickets
    agency.goto("/evaluation/scores")
    expect(agency.page.locator("#scores")).to_contain_text("和平区住房和建设委员会")
    expect(agency.page.locator("#chart-rates canvas")).to_be_visible()
    box = agency.page.evaluate(
        """() => {
          const el = document.getElementById("chart-rates");
          const chart = echarts.getInstanceByDom(el);
          const rows = JSON.parse(el.dataset.rows);
          const i = rows.findIndex(r => r.key === "120101-housing");
          const bar = chart.getModel().getSeriesByIndex(0).getData().getItemLayout(i);
          const x = bar.x + bar.width / 2, y = bar.y + bar.height / 2;  // the response bar
          const rect = el.getBoundingClientRect();
          return { x: rect.left + x, y: rect.top + y, height: Math.abs(bar.height) };
        }"""
    )
    assert box["height"] > 10  # the unit's response rate is a visible bar
    agency.page.mouse.click(box["x"], box["y"])
    expect(agency.page.locator("#explain")).to_contain_text(ticket_id)
    agency.shot("evaluation-scores")
    csv = agency.page.request.get(f"{system.url}/evaluation/scores.csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "120101-housing" in csv.text() or "和平区住房和建设委员会" in csv.text()
