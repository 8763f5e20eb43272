"""Chinese labels for the API's codes, Shanghai time, and Chinese wording for the API's
common refusal reasons (the API speaks English; the console speaks Chinese)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.intake.domain import DISTRICTS as INTAKE_DISTRICTS

SHANGHAI = ZoneInfo("Asia/Shanghai")

ROLES = {
    "operator": "话务员",
    "agency": "热线工作机构",
    "unit": "承办单位",
    "authority": "行业主管部门",
    "govservice": "政务服务部门",
    "supervisor": "社会监督员",
    "admin": "系统管理员",
    "citizen": "渠道账号",
}
CHANNELS = {
    "phone": "电话",
    "web": "网站",
    "wechat_official": "微信公众号",
    "wechat_mini": "微信小程序",
}
TYPES = {
    "consultation": "咨询",
    "complaint": "投诉",
    "help": "求助",
    "report": "举报",
    "suggestion": "建议",
    "praise": "表扬",
}
URGENCY = {"life_safety": "危及生命财产安全", "livelihood": "水电气热民生", "general": "一般"}
STATES = {
    "registered": "已登记",
    "answered": "已直接答复",
    "pending_dispatch": "待派单",
    "pending_determination": "待确定承办单位",
    "dispatched": "已派单",
    "return_review": "退回审核中",
    "accepted": "已接单",
    "completed": "已办结",
    "rehandling": "再次办理",
    "closed": "已结案",
    "pending": "待处理",
    "approved": "已同意",
    "rejected": "已驳回",
    "decided": "已确定",
    "requested": "待审核",
    "open": "未结束",
    "answered_supervision": "已回复",
    "due": "待回访",
    "recorded": "已回访",
    "running": "计时中",
    "met": "按时完成",
    "overdue": "已超时",
    "stopped": "已停止",
    "cancelled": "已取消",
    "at_risk": "临近超时",
    "draft": "草稿",
    "published": "已发布",
    "withdrawn": "已撤回",
    "expired": "已过期",
    "superseded": "已被替代",
    "awaiting_decision": "待决定是否再办",
    "sent_back": "已退回再次办理",
    "not_required": "无需回访",
}
CLOCK_KINDS = {"dispatch": "派单时限", "acceptance": "接单时限", "completion": "办结时限"}
RATINGS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
KNOWLEDGE_KINDS = {
    "normative_document": "规范性文件",
    "service_guide": "办事指南",
    "answer_script": "答复口径",
    "interpretation": "业务解读",
    "other": "其他",
}
SUPERVISION_KINDS = {
    "ticket": "工单督办",
    "written": "书面督办",
    "onsite": "现场督办",
    "special": "专项督办",
}
REQUEST_ACTIONS = {
    "add": "新增",
    "correct": "纠错",
    "supplement": "补充",
    "confirm": "确认",
    "withdraw": "撤回",
    "adjust": "调整",
}
DISTRICTS = INTAKE_DISTRICTS  # Tianjin's 16 districts, one table for the platform
EVENTS = {
    "ticket.registered": "登记",
    "ticket.answered": "直接答复",
    "ticket.flagged": "敏感标记",
    "ticket.dispatched": "派单",
    "ticket.accepted": "接单",
    "ticket.return_requested": "申请退回",
    "ticket.return_approved": "同意退回",
    "ticket.return_rejected": "驳回退回",
    "ticket.completed": "办结答复",
    "ticket.pending_determination": "提请确定承办单位",
    "ticket.determination_made": "确定承办单位",
    "ticket.call_rated": "话务评价",
    "ticket.rehandling_started": "再次办理",
    "sla.deadline_set": "设定时限",
    "sla.warning": "临近超时预警",
    "sla.overdue": "超时",
    "sla.escalated": "升级督办",
    "sla.extension_requested": "申请延期",
    "sla.extension_approved": "同意延期",
    "sla.extension_rejected": "驳回延期",
    "evaluation.revisit_recorded": "回访评价",
    "evaluation.rehandle_requested": "退回再办",
    "evaluation.closed": "结案",
    "evaluation.exemption_filed": "申请免责",
    "evaluation.exemption_decided": "免责审核",
    "supervision.opened": "督办",
    "supervision.answered": "督办回复",
    "supervision.closed": "督办结束",
    "monitor.hotspot": "热点",
}

_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Field required$"), "必填"),
    (re.compile(r"invalid period"), "时限格式不正确，应如 15m、2h、1d、7wd（工作日）"),
    (re.compile(r"suggestion_threshold must be"), "派单建议阈值应为大于 0、不超过 1 的数"),
    (re.compile(r"(\w+)\.(\w+) is missing"), r"缺少 \1.\2"),
    (re.compile(r"keywords are non-empty"), "关键词不能为空，每个最多 40 个字"),
    (re.compile(r"String should have at least (\d+) characters?"), r"至少 \1 个字"),
    (re.compile(r"String should have at most (\d+) characters?"), r"最多 \1 个字"),
    (re.compile(r"^Input should be (.*)$"), r"取值应为 \1"),
    (re.compile(r"not a valid (mobile|phone)", re.I), "电话号码无效"),
    (re.compile(r"^value is not a valid", re.I), "格式不正确"),
    (re.compile(r"wrong user name or password"), "用户名或密码错误"),
    (re.compile(r"access token has expired"), "登录已过期"),
    (re.compile(r"^at least 10 characters$"), "至少 10 位"),
    (
        re.compile(r"catalog names no unit for this matter: record why"),
        "目录未列此事项的承办单位：须写明派给该单位的理由（第七条、第八条）",
    ),
    (re.compile(r"a determination records why"), "须写明界定理由（第八条）"),
    (re.compile(r"written explanation is required"), "须写明情况说明（第二十四条）"),
    (re.compile(r"at least one evidence file is required"), "请至少上传一份证据材料"),
    (re.compile(r"^at most (\d+) files$"), r"最多 \1 个文件"),
    (re.compile(r"has no dissatisfied rating to explain"), "此工单没有“不满意”评价，无需申请免责"),
    (re.compile(r"a unit user needs its unit"), "承办单位用户须绑定所属单位"),
    (re.compile(r"is not bound to a unit"), "该角色不绑定承办单位"),
    (re.compile(r"authority needs its industry"), "行业主管部门须绑定所属行业（第八条）"),
    (re.compile(r"is not bound to an industry"), "该角色不绑定行业"),
]


def reason_zh(reason: str) -> str:
    """The API's reason in Chinese where a translation is known, else as it came (the
    API's own reasons name the article and the rule, which staff recognise)."""
    for pattern, zh in _REASONS:
        if pattern.search(reason):
            return pattern.sub(zh, reason) if "\\" in zh else zh
    return reason


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def shanghai(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC instant as Shanghai wall-clock time."""
    when = parse_time(value)
    return when.astimezone(SHANGHAI).strftime(fmt) if when else "—"


def duration_zh(seconds: float) -> str:
    s = int(abs(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{minutes:02d}分"
    return f"{minutes}分{s % 60:02d}秒"


def time_left(deadline: str | datetime | None, now: datetime) -> str:
    """ "剩余 3小时05分" or "已超时 12分00秒"."""
    when = parse_time(deadline)
    if when is None:
        return "—"
    seconds = (when - now).total_seconds()
    return f"剩余 {duration_zh(seconds)}" if seconds >= 0 else f"已超时 {duration_zh(seconds)}"


def label(table: dict[str, str], code: object) -> str:
    if code is None:
        return "—"
    return table.get(str(code), str(code))
