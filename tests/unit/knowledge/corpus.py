"""A small Chinese knowledge base and the questions operators and callers ask about it:
each question must find its entry among the first three results (on SQLite here, and on
PostgreSQL in tests/integration/test_knowledge.py)."""

from __future__ import annotations

from typing import Any

# key → (unit, matter, kind, title, body, [(question, answer)])
CORPUS: dict[str, tuple[str, str, str, str, str, list[tuple[str, str]]]] = {
    "heating_temperature": (
        "120101-housing",
        "HEAT-001",
        "answer_script",
        "供热期居民室内温度标准及报修渠道",
        "本市供热期为每年11月1日至次年3月31日。供热期间居民卧室、起居室室内温度不得低于18℃。"
        "室温不达标的，居民可先向供热单位报修，供热单位应在24小时内上门测温并处理。",
        [("家里暖气不热怎么办？", "先向供热单位报修，24小时内上门测温。")],
    ),
    "heating_fee": (
        "120101-housing",
        "HEAT-002",
        "service_guide",
        "居民采暖费缴纳标准和缴费方式",
        "居民住宅采暖费按建筑面积每平方米每采暖期25元收取，可通过银行代收、手机银行或"
        "供热单位营业厅缴纳。低保家庭可申请采暖费减免。",
        [("采暖费多少钱一平米？", "每平方米每采暖期25元。")],
    ),
    "elevator": (
        "120101-housing",
        "HOUSING-002",
        "service_guide",
        "老旧小区既有住宅加装电梯申请流程",
        "既有住宅加装电梯由业主自愿发起，须经本单元专有部分面积和人数均占三分之二以上的"
        "业主同意，向所在街道提交申请，经规划公示后办理施工许可。",
        [("加装电梯需要多少邻居同意？", "需双三分之二以上业主同意。")],
    ),
    "property_fee": (
        "120103-housing",
        "HOUSING-005",
        "answer_script",
        "物业服务收费争议的答复口径",
        "物业费标准由业主与物业服务企业在合同中约定，前期物业服务收费执行政府指导价。"
        "业主对物业费有异议的，可向区住房和建设委员会物业管理部门反映。",
        [("物业费太贵找谁？", "可向区住建委物业管理部门反映。")],
    ),
    "housing_fund_withdrawal": (
        "city-housing",
        "FUND-001",
        "service_guide",
        "住房公积金提取条件及所需材料",
        "职工购买、建造、翻建、大修自住住房，偿还购房贷款本息，或租房自住的，可以提取"
        "住房公积金。办理时需携带本人身份证件及相关证明材料到公积金管理中心或网上办理。",
        [("租房可以提取公积金吗？", "租房自住的可以提取住房公积金。")],
    ),
    "housing_fund_loan": (
        "city-housing",
        "FUND-002",
        "interpretation",
        "住房公积金贷款额度和利率解读",
        "公积金贷款最高额度为单人60万元、双职工80万元，首套住房五年以上贷款利率为2.85%。"
        "贷款额度还与缴存余额和还款能力有关。",
        [("公积金贷款最多能贷多少？", "单人60万元，双职工80万元。")],
    ),
    "residence_permit": (
        "city-public-security",
        "RESIDENCE-001",
        "service_guide",
        "居住证申领条件和办理流程",
        "在本市居住半年以上，有合法稳定就业、合法稳定住所或连续就读条件之一的，可以申领"
        "居住证。申请人持身份证和居住证明到居住地派出所办理。",
        [("外地人怎么办居住证？", "居住满半年，持身份证和居住证明到派出所办理。")],
    ),
    "settlement_points": (
        "city-hrss",
        "RESIDENCE-002",
        "normative_document",
        "积分落户管理办法",
        "积分落户指标由基础指标和导向指标组成，包括年龄、学历、职业资格、住房、社会保险"
        "缴纳年限等。积分达到当年分值的，可申请在本市落户。",
        [("积分落户看哪些条件？", "年龄、学历、职业资格、住房、社保缴纳年限等。")],
    ),
    "unpaid_wages": (
        "city-hrss",
        "LABOR-001",
        "answer_script",
        "拖欠工资投诉的处理口径",
        "用人单位拖欠或克扣劳动者工资的，劳动者可向用人单位所在地劳动保障监察机构投诉，"
        "也可以申请劳动争议仲裁。农民工工资拖欠问题优先受理。",
        [("老板不发工资怎么办？", "向劳动保障监察机构投诉或申请劳动仲裁。")],
    ),
    "social_security_card": (
        "city-hrss",
        "SOCIAL-001",
        "service_guide",
        "社保卡补办和挂失",
        "社会保障卡丢失后，可通过电话、网上或到合作银行网点办理临时挂失，再携带身份证"
        "到银行网点补办新卡，补卡工本费按规定收取。",
        [("社保卡丢了怎么补？", "先挂失，再持身份证到银行网点补办。")],
    ),
    "medical_insurance": (
        "city-medical-insurance",
        "MEDICAL-001",
        "interpretation",
        "城乡居民基本医疗保险缴费和报销",
        "城乡居民医保按年度缴费，每年集中缴费期为9月至12月。住院费用按医院级别报销，"
        "一级医院报销比例较高，门诊特定疾病可享受门特待遇。",
        [("居民医保什么时候交？", "每年9月至12月集中缴费。")],
    ),
    "newborn_registration": (
        "city-public-security",
        "RESIDENCE-003",
        "service_guide",
        "新生儿落户办理",
        "新生儿应在出生后一个月内办理户口登记，父母持出生医学证明、户口簿、结婚证到户籍"
        "派出所办理，也可通过网上办理。",
        [("孩子出生后怎么上户口？", "一个月内持出生医学证明等到派出所办理。")],
    ),
    "ebike_registration": (
        "city-public-security",
        "TRAFFIC-001",
        "service_guide",
        "电动自行车登记上牌",
        "购买电动自行车后应当办理登记、悬挂号牌后方可上路行驶。车主携带购车发票、产品"
        "合格证和本人身份证件到登记点办理。",
        [("电动车怎么上牌？", "带发票、合格证和身份证到登记点办理。")],
    ),
    "parking_fee": (
        "120101-urban",
        "URBAN-004",
        "answer_script",
        "道路停车收费标准答复口径",
        "中心城区道路临时停车泊位首小时收费5元，之后每小时2元，夜间时段收费减半。"
        "对收费有异议的可向城市管理部门反映。",
        [("路边停车怎么收费？", "首小时5元，之后每小时2元。")],
    ),
    "garbage_sorting": (
        "120101-urban",
        "URBAN-002",
        "interpretation",
        "生活垃圾分类投放要求",
        "生活垃圾分为厨余垃圾、可回收物、有害垃圾和其他垃圾四类，居民应当按照分类标准"
        "定时定点投放。大件垃圾需预约清运。",
        [("旧沙发怎么扔？", "大件垃圾需预约清运。")],
    ),
    "noise": (
        "city-environment",
        "ENV-001",
        "answer_script",
        "夜间施工噪音扰民投诉口径",
        "夜间22时至次日6时禁止产生噪声污染的建筑施工作业，因特殊需要必须连续施工的应当"
        "取得证明并公告。市民可向生态环境部门或城市管理部门投诉。",
        [("晚上工地施工太吵怎么办？", "夜间22时至6时禁止施工，可向生态环境部门投诉。")],
    ),
    "illegal_building": (
        "120101-urban",
        "URBAN-003",
        "answer_script",
        "违章建筑举报处理",
        "对未取得建设工程规划许可证或者未按照许可内容进行建设的违法建设，市民可以向街道"
        "综合执法大队举报，执法部门核实后依法责令限期拆除。",
        [("楼顶私搭乱建向谁举报？", "向街道综合执法大队举报。")],
    ),
    "water_outage": (
        "city-water",
        "WATER-001",
        "answer_script",
        "计划停水通知和临时供水",
        "因管网维修需计划停水的，供水企业应提前24小时通知用户。停水超过12小时的，应当"
        "采取临时供水措施。突发爆管停水可拨打供水服务热线报修。",
        [("突然停水了是怎么回事？", "可能是计划停水或爆管，可拨打供水热线报修。")],
    ),
    "gas_leak": (
        "city-gas",
        "GAS-001",
        "answer_script",
        "燃气泄漏应急处置口径",
        "发现燃气泄漏时，应立即关闭燃气阀门，打开门窗通风，严禁开关电器和使用明火，到室外"
        "安全地点拨打燃气抢修电话。",
        [("家里有煤气味怎么办？", "关阀门、开窗通风、不开电器，到室外打抢修电话。")],
    ),
    "rental_subsidy": (
        "city-housing",
        "HOUSING-007",
        "service_guide",
        "公共租赁住房租房补贴申请",
        "符合条件的中低收入住房困难家庭可以申请租房补贴，按月发放，补贴标准根据家庭人口"
        "和收入确定，申请人向户籍所在地街道提交材料。",
        [("低收入家庭租房有补贴吗？", "符合条件的可申请租房补贴，按月发放。")],
    ),
    "business_license": (
        "city-market",
        "MARKET-001",
        "service_guide",
        "个体工商户营业执照办理",
        "申请个体工商户登记，经营者可通过政务服务网全程电子化办理，提交身份证件和经营场所"
        "证明，符合条件的当场核发营业执照。",
        [("开个小店怎么办执照？", "可网上全程电子化办理个体工商户营业执照。")],
    ),
    "consumer_complaint": (
        "city-market",
        "MARKET-002",
        "answer_script",
        "消费者网购退货纠纷处理口径",
        "网购商品自收到之日起七日内可无理由退货，商家拒绝退货的，消费者可向市场监管部门"
        "投诉，或通过全国消费者投诉平台在线投诉。",
        [("网购不给退货怎么办？", "七日无理由退货，商家拒绝可向市场监管部门投诉。")],
    ),
    "veterans": (
        "city-veterans",
        "VETERAN-001",
        "interpretation",
        "退役军人优待证申领",
        "退役军人可向户籍所在地退役军人服务站申领优待证，凭证享受公园、景区、公共交通等优待服务。",
        [("退伍军人优待证怎么领？", "向户籍地退役军人服务站申领。")],
    ),
    "school_enrollment": (
        "city-education",
        "EDU-001",
        "service_guide",
        "义务教育阶段入学报名",
        "适龄儿童按户籍和房产对应学区入学，每年5月至6月网上报名，非本市户籍随迁子女需"
        "提供居住证、就业证明等材料。",
        [("孩子上小学怎么报名？", "每年5至6月网上报名，按学区入学。")],
    ),
}

# (what is asked, the entry that answers it)
QUERIES: list[tuple[str, str]] = [
    ("暖气不热", "heating_temperature"),
    ("室内温度不达标报修", "heating_temperature"),
    ("采暖费怎么交", "heating_fee"),
    ("加装电梯", "elevator"),
    ("老楼装电梯需要多少邻居同意", "elevator"),
    ("物业费太贵", "property_fee"),
    ("租房提取公积金", "housing_fund_withdrawal"),
    ("公积金贷款额度", "housing_fund_loan"),
    ("办居住证", "residence_permit"),
    ("积分落户条件", "settlement_points"),
    ("拖欠工资", "unpaid_wages"),
    ("老板不发工资", "unpaid_wages"),
    ("社保卡丢了", "social_security_card"),
    ("居民医保缴费时间", "medical_insurance"),
    ("新生儿上户口", "newborn_registration"),
    ("电动车上牌", "ebike_registration"),
    ("路边停车收费", "parking_fee"),
    ("垃圾分类", "garbage_sorting"),
    ("工地夜间施工噪音", "noise"),
    ("违章建筑举报", "illegal_building"),
    ("停水", "water_outage"),
    ("燃气泄漏", "gas_leak"),
    ("租房补贴", "rental_subsidy"),
    ("营业执照", "business_license"),
    ("网购退货", "consumer_complaint"),
    ("退役军人优待证", "veterans"),
    ("小学入学报名", "school_enrollment"),
]

# A ticket's text as a caller says it, and the entry that answers it (suggest).
TICKETS: list[tuple[str, str | None, str]] = [
    (
        "您好，我是和平区的居民，家里暖气一直不热，温度计显示才15度，请问该怎么处理？",
        "HEAT-001",
        "heating_temperature",
    ),
    (
        "我在外地打工，老板已经三个月没发工资了，我应该去哪里投诉？",
        None,
        "unpaid_wages",
    ),
    (
        "楼道里有很重的煤气味，担心燃气泄漏，现在应该怎么办",
        "GAS-001",
        "gas_leak",
    ),
    (
        "小区旁边的工地每天晚上十一点多还在施工，噪音特别大，影响休息",
        None,
        "noise",
    ),
]


def corpus_entry(key: str, valid_from: str, valid_until: str) -> dict[str, Any]:
    unit, matter, kind, title, body, faq = CORPUS[key]
    return {
        "unit_id": unit,
        "kind": kind,
        "title": title,
        "body": body,
        "legal_basis": "《天津市12345政务服务便民热线管理实施细则》",
        "scope": "天津市行政区域",
        "applicable_subjects": "本市居民",
        "conditions": "按现行规定办理",
        "faq": [{"question": q, "answer": a} for q, a in faq],
        "matter_codes": [matter],
        "valid_from": valid_from,
        "valid_until": valid_until,
    }
