"""Knowledge search over 100,000 entries of Chinese text on PostgreSQL: index build time and
search / suggest latency (p50/p95/p99, ms). Prints JSON. Goal: search p95 < 20 ms.

Uses the PostgreSQL named by HOTLINE_TEST_PG_URL or HOTLINE_PG_URL, else starts one with
scripts/postgres.sh. Works in a throwaway database it creates and drops. Entries are
generated from templates (16 districts, 40 subjects, varied sentences, numbers, FAQ) and
loaded with COPY; the timed part is the service's own ``rebuild_index`` (jieba
segmentation in worker processes, COPY of postings, statistics) plus VACUUM ANALYZE.
Latency is measured on the service's query path (segmentation, statistics, BM25 in SQL,
filters), sequentially, after a warm-up. BENCH_ENTRIES and BENCH_QUERIES change the size."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.knowledge import tokens  # noqa: E402
from services.knowledge.handlers import search  # noqa: E402
from services.knowledge.models import entries, entry_matters  # noqa: E402
from shared.db import Database  # noqa: E402

ENTRIES = int(os.environ.get("BENCH_ENTRIES", "100000"))
QUERIES = int(os.environ.get("BENCH_QUERIES", "2000"))
NOW = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)

DISTRICTS = (
    "和平区 河东区 河西区 南开区 河北区 红桥区 东丽区 西青区 "
    "津南区 北辰区 武清区 宝坻区 滨海新区 宁河区 静海区 蓟州区"
).split()
TITLE_ENDINGS = ["办事指南", "答复口径", "政策解读", "常见问题", ""]
KINDS = ["normative_document", "service_guide", "answer_script", "interpretation", "other"]
# subject → (matter, title words, sentences, (question, answer))
SUBJECTS: list[tuple[str, str, list[str], tuple[str, str]]] = [
    (
        "HEAT-001",
        "供热室温不达标报修",
        [
            "供热期间居民卧室室内温度不得低于18℃",
            "室温不达标的可向供热单位报修",
            "供热单位应在24小时内上门测温",
        ],
        ("暖气不热怎么办", "向供热单位报修"),
    ),
    (
        "HEAT-002",
        "采暖费缴纳",
        ["采暖费按建筑面积计收", "可通过手机银行缴纳采暖费", "低保家庭可申请采暖费减免"],
        ("采暖费怎么交", "手机银行或营业厅缴纳"),
    ),
    (
        "HOUSING-002",
        "加装电梯",
        [
            "既有住宅加装电梯由业主自愿发起",
            "须经双三分之二以上业主同意",
            "加装电梯经规划公示后办理施工许可",
        ],
        ("加装电梯需要多少人同意", "双三分之二以上业主"),
    ),
    (
        "HOUSING-005",
        "物业服务收费",
        [
            "物业费标准由合同约定",
            "前期物业服务收费执行政府指导价",
            "对物业费有异议可向住建部门反映",
        ],
        ("物业费太贵找谁", "向住建部门反映"),
    ),
    (
        "FUND-001",
        "住房公积金提取",
        ["租房自住可以提取住房公积金", "偿还购房贷款本息可提取公积金", "可在网上办理公积金提取"],
        ("租房能提取公积金吗", "可以提取"),
    ),
    (
        "FUND-002",
        "公积金贷款",
        ["公积金贷款最高额度为单人60万元", "首套住房公积金贷款利率较低", "贷款额度与缴存余额有关"],
        ("公积金能贷多少", "单人60万元"),
    ),
    (
        "RESIDENCE-001",
        "居住证申领",
        ["居住半年以上可申领居住证", "申请人持身份证到派出所办理居住证", "居住证每年签注一次"],
        ("怎么办居住证", "到派出所办理"),
    ),
    (
        "RESIDENCE-002",
        "积分落户",
        ["积分落户包括年龄学历等指标", "社保缴纳年限计入积分", "积分达到分值可申请落户"],
        ("积分落户看什么", "年龄学历社保等"),
    ),
    (
        "RESIDENCE-003",
        "新生儿落户",
        [
            "新生儿应在出生后一个月内办理户口登记",
            "持出生医学证明到派出所办理",
            "新生儿落户可网上办理",
        ],
        ("孩子怎么上户口", "持出生医学证明办理"),
    ),
    (
        "LABOR-001",
        "拖欠工资投诉",
        [
            "用人单位拖欠工资的可向劳动保障监察机构投诉",
            "劳动者可以申请劳动争议仲裁",
            "农民工工资拖欠优先受理",
        ],
        ("老板不发工资怎么办", "向劳动监察投诉"),
    ),
    (
        "SOCIAL-001",
        "社保卡补办",
        ["社保卡丢失后可电话挂失", "持身份证到银行网点补办社保卡", "补卡工本费按规定收取"],
        ("社保卡丢了怎么办", "挂失后补办"),
    ),
    (
        "MEDICAL-001",
        "居民医保缴费报销",
        ["城乡居民医保每年9月至12月集中缴费", "住院费用按医院级别报销", "门诊特定疾病享受门特待遇"],
        ("居民医保什么时候交", "9月至12月"),
    ),
    (
        "TRAFFIC-001",
        "电动自行车登记",
        [
            "电动自行车须登记上牌后上路",
            "携带购车发票和合格证办理登记",
            "电动自行车驾驶人应佩戴安全头盔",
        ],
        ("电动车怎么上牌", "带发票合格证登记"),
    ),
    (
        "URBAN-004",
        "道路停车收费",
        ["道路临时停车首小时收费5元", "夜间停车收费减半", "对停车收费有异议可向城管部门反映"],
        ("路边停车怎么收费", "首小时5元"),
    ),
    (
        "URBAN-002",
        "垃圾分类",
        ["生活垃圾分为四类", "居民应定时定点投放垃圾", "大件垃圾需预约清运"],
        ("旧家具怎么扔", "预约清运"),
    ),
    (
        "ENV-001",
        "夜间施工噪音",
        ["夜间22时至次日6时禁止施工作业", "连续施工应取得证明并公告", "可向生态环境部门投诉噪音"],
        ("工地晚上太吵怎么办", "向生态环境部门投诉"),
    ),
    (
        "URBAN-003",
        "违章建筑举报",
        [
            "未取得规划许可的建设属于违法建设",
            "可向街道综合执法大队举报违建",
            "执法部门核实后责令限期拆除",
        ],
        ("私搭乱建向谁举报", "街道综合执法大队"),
    ),
    (
        "WATER-001",
        "停水报修",
        ["计划停水应提前24小时通知用户", "停水超过12小时应临时供水", "突发爆管可拨打供水热线报修"],
        ("突然停水怎么办", "拨打供水热线"),
    ),
    (
        "GAS-001",
        "燃气泄漏处置",
        ["发现燃气泄漏应立即关闭阀门", "打开门窗通风严禁明火", "到室外拨打燃气抢修电话"],
        ("有煤气味怎么办", "关阀开窗到室外报修"),
    ),
    (
        "HOUSING-007",
        "租房补贴申请",
        ["中低收入住房困难家庭可申请租房补贴", "租房补贴按月发放", "向户籍地街道提交租房补贴申请"],
        ("租房有补贴吗", "符合条件可申请"),
    ),
    (
        "MARKET-001",
        "个体工商户营业执照",
        [
            "个体工商户登记可全程电子化办理",
            "提交身份证件和经营场所证明",
            "符合条件当场核发营业执照",
        ],
        ("开店怎么办执照", "网上办理"),
    ),
    (
        "MARKET-002",
        "网购退货纠纷",
        [
            "网购商品七日内可无理由退货",
            "商家拒绝退货可向市场监管部门投诉",
            "可通过全国消费者投诉平台投诉",
        ],
        ("网购不给退怎么办", "向市场监管投诉"),
    ),
    (
        "VETERAN-001",
        "退役军人优待证",
        ["退役军人可申领优待证", "凭优待证享受公共交通优待", "向退役军人服务站申领"],
        ("优待证怎么领", "服务站申领"),
    ),
    (
        "EDU-001",
        "义务教育入学报名",
        ["适龄儿童按学区入学", "每年5月至6月网上报名", "随迁子女需提供居住证"],
        ("上小学怎么报名", "5至6月网上报名"),
    ),
    (
        "EDU-002",
        "校外培训退费",
        ["校外培训机构应按规定退费", "预收费纳入资金监管", "退费纠纷可向教育部门反映"],
        ("培训班不退费怎么办", "向教育部门反映"),
    ),
    (
        "HEALTH-001",
        "医疗机构投诉",
        ["对医疗服务不满意可向医院投诉", "医疗纠纷可申请人民调解", "可向卫生健康委反映"],
        ("看病被多收费怎么办", "向卫健委反映"),
    ),
    (
        "TRAFFIC-002",
        "公交线路调整",
        ["公交线路调整提前公告", "可通过出行软件查询公交实时信息", "对公交服务有意见可投诉"],
        ("公交车改线了吗", "查看公告"),
    ),
    (
        "TRAFFIC-003",
        "网约车投诉",
        ["网约车平台应处理乘客投诉", "网约车须取得运输证", "可向交通运输部门投诉网约车"],
        ("网约车绕路怎么办", "向平台和交通部门投诉"),
    ),
    (
        "ENV-002",
        "餐饮油烟扰民",
        [
            "餐饮单位应安装油烟净化设施",
            "居民楼底层不得新建产生油烟的餐饮项目",
            "油烟扰民可向城管部门投诉",
        ],
        ("楼下饭店油烟大怎么办", "向城管投诉"),
    ),
    (
        "URBAN-005",
        "占道经营",
        ["禁止在道路两侧占道经营", "城管部门依法查处占道经营", "便民摊点应在指定区域经营"],
        ("路边摆摊谁管", "城管部门"),
    ),
    (
        "HOUSING-008",
        "老旧小区改造",
        ["老旧小区改造包括管网和外立面", "改造方案征求居民意见", "改造期间注意施工安全"],
        ("我们小区能改造吗", "纳入计划的可改造"),
    ),
    (
        "HOUSING-009",
        "房屋维修资金",
        ["专项维修资金用于共用部位维修", "使用维修资金需业主表决", "维修资金可网上查询"],
        ("维修资金怎么用", "业主表决后使用"),
    ),
    (
        "SOCIAL-002",
        "养老金领取资格认证",
        ["领取养老金需每年认证", "可通过手机进行养老金资格认证", "认证不成功可到社区办理"],
        ("养老金怎么认证", "手机认证"),
    ),
    (
        "SOCIAL-003",
        "失业保险金申领",
        ["失业人员可申领失业保险金", "失业保险金可网上申请", "领取期间享受医保待遇"],
        ("失业了能领钱吗", "可申领失业保险金"),
    ),
    (
        "CIVIL-001",
        "婚姻登记预约",
        ["婚姻登记实行网上预约", "双方持身份证户口簿办理", "婚姻登记不收费"],
        ("结婚登记要预约吗", "网上预约"),
    ),
    (
        "CIVIL-002",
        "低保申请",
        ["低保申请向户籍地街道提出", "家庭人均收入低于标准可申请", "低保每年复核"],
        ("怎么申请低保", "向街道申请"),
    ),
    (
        "TAX-001",
        "个人所得税汇算",
        ["个税年度汇算在次年3月至6月", "可通过个税软件办理", "专项附加扣除可在汇算时填报"],
        ("个税汇算什么时候办", "3月至6月"),
    ),
    (
        "PET-001",
        "养犬登记",
        ["养犬应办理登记并年检", "外出遛狗须拴绳", "烈性犬禁止饲养"],
        ("养狗要登记吗", "需要登记"),
    ),
    (
        "CULTURE-001",
        "公共文化场馆开放",
        ["图书馆博物馆免费开放", "周一闭馆维护", "节假日开放时间另行公告"],
        ("博物馆周一开吗", "周一闭馆"),
    ),
    (
        "AGRI-001",
        "农村宅基地",
        ["宅基地申请向村委会提出", "一户只能拥有一处宅基地", "宅基地不得买卖"],
        ("宅基地怎么申请", "向村委会申请"),
    ),
]
GENERIC = [
    "具体以{d}相关部门最新公布的规定为准",
    "办理时间为工作日上午9时至下午5时",
    "市民可通过天津市政务服务网在线办理",
    "咨询可拨打12345政务服务便民热线",
    "{y}年起执行新的标准",
    "相关费用按照{a}元标准执行",
    "申请材料齐全的，{n}个工作日内办结",
    "本市居民和在津务工人员均适用",
    "如对处理结果不满意，可依法申请行政复议",
    "街道社区服务中心可提供帮办代办服务",
]


def make_entry(rng: random.Random, i: int) -> dict[str, Any]:
    matter, subject, sentences, (question, answer) = SUBJECTS[i % len(SUBJECTS)]
    district = rng.choice(DISTRICTS)
    parts = rng.sample(sentences, k=len(sentences)) + [
        g.format(
            d=district,
            y=rng.choice([2024, 2025, 2026]),
            a=rng.randint(5, 5000),
            n=rng.randint(1, 20),
        )
        for g in rng.sample(GENERIC, k=rng.randint(3, 6))
    ]
    rng.shuffle(parts)
    valid_from = NOW - timedelta(days=rng.randint(1, 150))
    expired = rng.random() < 0.05
    return {
        "entry_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "kind": rng.choice(KINDS),
        "title": f"{district}{subject}{rng.choice(TITLE_ENDINGS)}",
        "body": "。".join(parts) + "。",
        "legal_basis": f"《天津市{subject}管理办法》",
        "scope": f"{district}行政区域",
        "applicable_subjects": "本市居民",
        "conditions": "按现行规定办理",
        "faq": json.dumps([{"question": question, "answer": answer}], ensure_ascii=False),
        "related_entries": "[]",
        "matter_codes": json.dumps([matter]),
        "supersedes": "[]",
        "unit_id": f"unit-{i % 97}",
        "status": "expired" if expired else "published",
        "version": 1,
        "valid_from": valid_from,
        "valid_until": valid_from + timedelta(days=180),
        "created_at": valid_from,
        "created_by": "bench",
        "published_at": valid_from,
    }


def make_queries(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        _, subject, sentences, (question, _) = rng.choice(SUBJECTS)
        out.append(
            rng.choice(
                [
                    subject,
                    question,
                    f"{rng.choice(DISTRICTS)}{subject}",
                    rng.choice(sentences)[: rng.randint(4, 10)],
                    f"{subject} 办理",
                ]
            )
        )
    return out


def pg_url() -> str:
    url = os.environ.get("HOTLINE_TEST_PG_URL") or os.environ.get("HOTLINE_PG_URL")
    if url:
        return url
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "start"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)["HOTLINE_PG_URL"]


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """The URL of a database of its own on ``pg_url``'s server, dropped at the end."""
    url = pg_url()
    admin = url.replace("postgresql+asyncpg", "postgresql")
    database = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    try:
        yield f"{url.rpartition('/')[0]}/{database}"
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()


@asynccontextmanager
async def scratch_service_db(*tables: Any) -> AsyncIterator[Database]:
    """A ``Database`` of a service "bench" in a database of its own (``scratch_database``):
    its schema with the plumbing tables (outbox, inbox, dead letters...) and ``tables``."""
    async with scratch_database() as url:
        db = Database("bench", url, pool_size=2)
        try:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql('CREATE SCHEMA "bench"')
                await conn.run_sync(db.metadata.create_all)
                for table in tables:
                    await conn.run_sync(table.create)
            yield db
        finally:
            await db.dispose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)], 3)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": pct(values, 50),
        "p95_ms": pct(values, 95),
        "p99_ms": pct(values, 99),
        "mean_ms": round(statistics.fmean(values), 3),
    }


async def main() -> None:
    base = pg_url()
    admin_url = base.replace("postgresql+asyncpg", "postgresql")
    name = f"hotline_bench_kb_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database("knowledge", f"{base.rpartition('/')[0]}/{name}", pool_size=2)
    result: dict[str, Any] = {"benchmark": "knowledge_search", "entries": ENTRIES}
    try:
        await db.migrate(ROOT / "services" / "knowledge" / "migrations")
        rng = random.Random(20260301)
        started = time.perf_counter()
        rows = [make_entry(rng, i) for i in range(ENTRIES)]
        async with db.engine.begin() as conn:
            await search.bulk_insert(conn, entries, rows)
            await search.bulk_insert(
                conn,
                entry_matters,
                [
                    {"entry_id": r["entry_id"], "matter_code": json.loads(r["matter_codes"])[0]}
                    for r in rows
                ],
            )
        result["load_seconds"] = round(time.perf_counter() - started, 1)
        result["body_chars_mean"] = round(statistics.fmean(len(r["body"]) for r in rows))
        del rows

        started = time.perf_counter()
        async with db.engine.begin() as conn:
            built = await search.rebuild_index(conn)
        async with db.engine.connect() as conn:
            ac = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await ac.exec_driver_sql("VACUUM ANALYZE")
        result["index_build_seconds"] = round(time.perf_counter() - started, 1)
        result["postings"] = built["postings"]

        tokens.initialize()
        queries = make_queries(random.Random(7), QUERIES)
        flt = search.SearchFilter(now=NOW)

        async def one(q: str) -> tuple[float, int]:
            t = time.perf_counter()
            async with db.engine.connect() as conn:
                hits = await search.search(conn, tokens.query_terms(q), flt, limit=10)
            return (time.perf_counter() - t) * 1000, len(hits)

        for q in queries[:100]:  # warm-up
            await one(q)
        timings, empty = [], 0
        for q in queries:
            ms, n = await one(q)
            timings.append(ms)
            empty += n == 0
        result["search"] = {**summary(timings), "queries": len(queries), "empty_results": empty}

        tickets = [
            f"您好，我是{rng.choice(DISTRICTS)}的居民，想咨询一下{s[1]}的问题，{rng.choice(s[2])}吗？"
            for s in (rng.choice(SUBJECTS) for _ in range(300))
        ]
        suggest_ms = []
        for text in tickets:
            t = time.perf_counter()
            async with db.engine.connect() as conn:
                terms = await search.selective_terms(conn, text)
                await search.search(conn, terms, flt, limit=5)
            suggest_ms.append((time.perf_counter() - t) * 1000)
        result["suggest"] = {**summary(suggest_ms), "queries": len(tickets)}
        result["goal_search_p95_ms"] = 20
        result["goal_met"] = result["search"]["p95_ms"] < 20
        async with db.engine.connect() as conn:
            result["postgresql"] = (await conn.exec_driver_sql("SHOW server_version")).scalar()
    finally:
        await db.dispose()
        if not os.environ.get("BENCH_KEEP_DB"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        result["database"] = name
        await admin.close()
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
