"""The customer pages' texts as data: Chinese message ids, translated where a template shows them.

``translations/en`` holds their English; ``python -m tools.translations`` finds them where ``N_`` marks them.
"""

from __future__ import annotations

from central.console import bp
from central.console.navigation import MEDIUM_LABELS


def N_(text: str) -> str:
    """Mark a Chinese message id for the catalogue; templates translate it when they show it."""
    return text


TIMELINE_LABELS = {
    "pos.receipt": N_("门店购买"),
    "pos.refund": N_("门店退款"),  # a till receipt below zero (central.console.customers)
    "receipt.set_aside": N_("门店小票（已搁置，未计入）"),  # central.customers.timeline.SET_ASIDE_KIND
    "pos.sale": N_("门店销售"),
    "order.online": N_("线上订单"),
    "scan.member": N_("会员码扫码"),
    "scan.coupon": N_("优惠券扫码"),
    "scan.product": N_("商品扫码"),
    "service.complaint": N_("投诉"),
    "presence.visit": N_("到店"),
    "coupon.issued": N_("优惠券发放"),
    "coupon.redeemed": N_("优惠券核销"),
    "note": N_("备注"),
}
FIELD_LABELS = {
    "receipt_no": N_("小票"),
    "payment_method": N_("支付方式"),
    "sale_no": N_("销售单号"),
    "order_no": N_("订单号"),
    "channel": N_("渠道"),
    "status": N_("状态"),
    "result": N_("结果"),
    "member_id": N_("会员编号"),
    "coupon_id": N_("券号"),
    "sku": N_("商品编码"),
    "code": N_("条码"),
    "ticket_no": N_("工单号"),
    "category": N_("类别"),
    "severity": N_("严重程度"),
    "text": N_("内容"),
    "dwell_min": N_("停留（分钟）"),
    "medium": N_("方式"),
    "campaign": N_("活动"),
    "face_value": N_("面值"),
    "serial": N_("序号"),
    "set_aside": N_("搁置原因"),
    "counted_total": N_("已计入的金额"),
    "operator": N_("受理人（来源所述）"),
    "sent_by": N_("发送方"),
}
# Timeline values that are codes, by field; a value not listed shows as sent, marked as the source's own.
FIELD_VALUE_LABELS = {
    "payment_method": {  # edge_agent.parsing.receipt_profile.PAYMENT_METHODS
        "wechat": N_("微信支付"),
        "alipay": N_("支付宝"),
        "cash": N_("现金"),
        "bank_card": N_("银行卡"),
        "unionpay_qr": N_("银联二维码"),
        "stored_value": N_("储值卡"),
        "other": N_("其他"),
        "mixed": N_("组合支付"),  # several tenders (central.customers.timeline.MIXED_TENDERS)
    },
    "channel": {  # an online order's (central.customers.sales), a complaint's (console)
        "store": N_("门店"),
        "online": N_("线上"),
        "app": N_("App"),
        "mini_program": N_("小程序"),
        "miniprogram": N_("小程序"),
        "mini-program": N_("小程序"),
        "wechat_mini_program": N_("小程序"),
        "console": N_("控制台"),
    },
    "medium": MEDIUM_LABELS,
    "set_aside": {  # central.customers.set_aside.SET_ASIDE_FLAGS
        "reprint_total_differs": N_("同一小票号再次出现，金额不同：待财务核对"),
    },
    "result": {  # a scan's: accepted, or why the till refused the code (shared.coupon_code, shared.member_code)
        "accepted": N_("通过"),
        "not-a-coupon": N_("不是优惠券码"),
        "not-a-member-code": N_("不是会员码"),
        "unknown-key": N_("未知的密钥"),
        "unknown": N_("未知的会员"),
        "forged": N_("伪造"),
        "unknown-campaign": N_("未知的活动"),
        "not-this-store": N_("不适用本店"),
        "wrong-member": N_("会员不符"),
        "revoked": N_("已作废"),
        "not-yet-valid": N_("尚未生效"),
        "expired": N_("已过期"),
        "used-here": N_("本店已用过"),
        "budget-exhausted": N_("离线额度已用完"),
        "replayed": N_("重复使用"),
        "other-store-replayed": N_("已在其他门店使用"),
    },
}
# Codes whose meaning depends on the entry's kind: a status is an order's or a coupon redemption's.
# An online source names its order statuses itself (shared.payloads: any text up to 32 characters);
# these are the common ones, matched ignoring case and "-" or " " for "_" (Cancelled, canceled).
ORDER_STATUS_LABELS = {
    "created": N_("已下单"),
    "pending": N_("待付款"),
    "unpaid": N_("待付款"),
    "pending_payment": N_("待付款"),
    "paid": N_("已付款"),
    "processing": N_("处理中"),
    "shipped": N_("已发货"),
    "delivered": N_("已送达"),
    "completed": N_("已完成"),
    "closed": N_("交易关闭"),
    "cancelled": N_("已取消"),
    "canceled": N_("已取消"),
    "refunding": N_("退款中"),
    "refunded": N_("已退款"),
    "partially_refunded": N_("部分退款"),
    "returned": N_("已退货"),
}
KIND_FIELD_VALUE_LABELS = {
    ("order.online", "status"): ORDER_STATUS_LABELS,
    ("coupon.redeemed", "status"): {"applied": N_("已计入活动"), "over_limit": N_("超出核销上限")},
}


def value_labels(kind: str, name: str) -> dict[str, str] | None:
    """The labels of a timeline field's codes in an entry of ``kind``, or None when the field is not a code."""
    return KIND_FIELD_VALUE_LABELS.get((kind, name)) or FIELD_VALUE_LABELS.get(name)


def code_key(value: str) -> str:
    """A code as the label tables key it: ``Partially-Refunded`` -> ``partially_refunded``."""
    return value.strip().lower().replace("-", "_").replace(" ", "_")


PURPOSE_LABELS = {
    "service": N_("服务通知"),
    "marketing": N_("营销"),
    "profiling": N_("画像"),
    "location": N_("位置"),
}
CHANNEL_LABELS = {
    "sms": N_("短信"),
    "wechat": N_("微信"),
    "app_push": N_("App 推送"),
    "email": N_("邮件"),
    "all": N_("全部渠道"),
}
# Who recorded a consent decision (shared.payloads.CONSENT_SOURCES).
CONSENT_SOURCE_LABELS = {
    "till": N_("门店收银台"),
    "app": N_("App"),
    "import": N_("会员导入"),
    "console": N_("控制台"),
    "api": "API",
}
# Why a purpose is allowed or refused now (central.customers.consent_gate.Verdict.reason).
CONSENT_VERDICT_LABELS = {
    "granted": N_("已同意"),
    "withdrawn": N_("已撤回"),
    "no_consent": N_("未同意"),
    "minor_without_guardian_consent": N_("未成年，无监护人同意"),
}
# How a customer asked the service desk to withdraw consent, kept in the audit row.
CONSENT_ASKED_LABELS = {
    "phone": N_("来电"),
    "counter": N_("到店"),
    "message": N_("书面或在线留言"),
}
# Where a golden value came from: central's own sources by name; any other online source (or an
# import) as source:<name>, and a store PC by its device id, with the name beside the words.
ATTRIBUTE_SOURCE_LABELS = {
    "receipts": N_("门店小票统计"),
    "source:console": N_("控制台"),
    "source:import": N_("会员导入"),
}
NAMED_SOURCE = N_("来源 %(name)s")
STORE_DEVICE = N_("门店设备 %(name)s")
ATTRIBUTE_LABELS = {
    "name": N_("姓名"),
    "gender": N_("性别"),
    "birthday": N_("生日"),
    "city": N_("城市"),
    "postcode": N_("邮编"),
    "preferred_store": N_("常去门店"),
}
# Built-in tags as the customer page names them; the key stays beside the name, for segment rules.
TAG_LABELS = {
    "rfm.r": N_("R 最近购买分"),
    "rfm.f": N_("F 购买频次分"),
    "rfm.m": N_("M 消费金额分"),
    "value_tier": N_("价值层级"),
    "frequency": N_("购买频次"),
    "channel": N_("渠道偏好"),
    "top_category": N_("偏好品类"),
    "preferred_store": N_("常去门店"),
    "time_of_day": N_("购物时段"),
    "weekend_shopper": N_("周末购物"),
    "lifecycle": N_("生命周期"),
    "repurchase": N_("复购到期"),
    "value.spend": N_("历史消费"),
    "value.clv": N_("预测生命周期价值"),
    "service.high_care": N_("重点关怀"),
    "presence.visits_without_purchase": N_("到店未购"),
    "presence.long_dwell": N_("长时间停留"),
}
_YES_NO = {"yes": N_("是"), "no": N_("否")}
TAG_VALUE_LABELS = {
    "value_tier": {"loyal": N_("忠诚"), "potential": N_("潜力"), "dormant": N_("沉睡"), "other": N_("其他")},
    "frequency": {"high": N_("高频"), "normal": N_("一般")},
    "channel": {"omnichannel": N_("全渠道"), "online_heavy": N_("偏线上"), "store_heavy": N_("偏门店")},
    "lifecycle": {
        "new": N_("新客"),
        "active": N_("活跃"),
        "at_risk": N_("有流失风险"),
        "dormant": N_("沉睡"),
        "churned": N_("已流失"),
    },
    "time_of_day": {
        "morning": N_("上午"),
        "afternoon": N_("下午"),
        "evening": N_("晚上"),
        "night": N_("夜间"),
        "mixed": N_("不固定"),
    },
    "weekend_shopper": _YES_NO,
    "service.high_care": _YES_NO,
}
# The inputs stored with each tag (its "why"), by key.
INPUT_LABELS = {
    "active_customers": N_("活跃客户数"),
    "rank": N_("排名"),
    "window_days": N_("窗口（天）"),
    "purchases": N_("购买次数"),
    "purchases_in_window": N_("窗口内购买次数"),
    "spent": N_("消费额"),
    "spent_in_window": N_("窗口内消费额"),
    "days_since_first": N_("距首次购买（天）"),
    "days_since_last": N_("距最近购买（天）"),
    "share": N_("占比"),
    "stores": N_("门店数"),
    "store": N_("门店"),
    "online": N_("线上"),
    "app": N_("App"),
    "mini_program": N_("小程序"),
    "morning": N_("上午"),
    "afternoon": N_("下午"),
    "evening": N_("晚上"),
    "night": N_("夜间"),
    "weekend_purchases": N_("周末购买次数"),
    "customer_purchases": N_("总购买次数"),
    "interval_days": N_("间隔（天）"),
    "first_purchase_at": N_("首次购买"),
    "last_purchase_at": N_("最近购买"),
    "age_days": N_("客龄（天）"),
    "recency_days": N_("最近复购距首购（天）"),
    "repeat_purchase_days": N_("复购天数"),
    "mean_repeat_spend": N_("平均复购金额"),
    "horizon_months": N_("预测期（月）"),
    "model": N_("模型参数"),
    "complaints": N_("投诉次数"),
    "days": N_("天数"),
    "last_complaint_at": N_("最近投诉"),
    "visits": N_("到店次数"),
    "visits_without_purchase": N_("未购到店次数"),
    "min_visits": N_("最少到店次数"),
    "long_visits": N_("长停留次数"),
    "longest_dwell_minutes": N_("最长停留（分钟）"),
    "min_minutes": N_("停留阈值（分钟）"),
}
# The identity ledger: what happened (action) and why (rule); a rule not listed shows as stored.
LEDGER_ACTIONS = {
    "link": N_("关联"),
    "unlink": N_("解除关联"),
    "merge": N_("合并"),
    "unmerge": N_("取消合并"),
    "split": N_("拆分"),
}
LEDGER_RULES = {
    "new_customer": N_("新建客户"),
    "same_event": N_("同一事件"),
    "shared_identifier": N_("共用标识"),
    "weak_attach": N_("弱标识附加"),
    "reassigned": N_("标识转给他人"),
    "suspicious": N_("可疑标识"),
    "split": N_("拆分"),
    "removed": N_("人工移除"),
    "review_accepted": N_("审核接受"),
    "weak_match": N_("弱匹配"),
    "respelled": N_("按新规则重新规范化"),
}
PROBLEMS = {
    "empty": N_("内容为空，未保存。"),
    "too_long": N_("内容过长，未保存。"),
    "no_identifier": N_("该客户没有可用于登记投诉的标识。"),
    "refused": N_("投诉未被接收，请重试。"),
    "split": N_("无法拆分：这条记录不是该客户的合并或关联，或该客户已被合并。"),
    "review": N_("无法处理这条审核：合并被标识规则禁止，或其中的标识已归另一位客户。"),
    "review_decided": N_("这条审核已被处理过了。"),
    "review_unique": N_("无法合并：两位客户的唯一标识不同。如确为同一人，请先在其中一位的页面移除该标识。"),
    "review_limit": N_("无法合并：合并后某类标识的数量会超出上限。请先在其中一位的页面移除多余的标识。"),
    "merged": N_("该客户已合并到另一个客户，请在合并后的客户上操作。"),
    "erased": N_("该客户已被删除，不再记录关于其的备注或投诉。"),
    "consent": N_("撤回未记录：请选择用途、渠道和客户提出的方式后重试。"),
}
REVIEW_REASONS = {
    "weak_match": N_("弱匹配建议"),
    "conflict": N_("标识冲突"),
    "unique_conflict": N_("唯一标识冲突"),
    "limit_exceeded": N_("超出标识数量上限"),
    "suspicious_value": N_("可疑的标识值"),
    "reassigned": N_("标识已转给他人"),
    "respelled_value": N_("标识值重新规范化后与另一位客户的相同"),
}
# Event kinds as a review item's evidence names them: the timeline's, and the member systems' own.
KIND_LABELS = {
    **TIMELINE_LABELS,
    "member.signup": N_("会员注册"),
    "member.update": N_("会员资料变更"),
    "member.login": N_("会员登录"),
}
# A review item's evidence (central.identity.changes and .suggestions write these keys).
EVIDENCE_LABELS = {
    "event_id": N_("事件"),
    "kind": N_("事件类型"),
    "match": N_("依据"),
    "fields": N_("一致的资料"),
    "stored_ids": N_("存储记录"),
}
# Weak-match rules: a base rule, then "_city" or "_postcode" when that place agreed too.
MATCH_LABELS = {
    "name_birthday": N_("姓名与生日相同"),
    "pinyin_birthday": N_("姓名拼音与生日相同"),
    "fuzzy_name_birthday": N_("姓名相近，生日相同"),
    "city": N_("城市相同"),
    "postcode": N_("邮编相同"),
}
STATE_NAMES = {
    "linked": N_("已关联"),
    "trusted": N_("已确认"),
    "suspicious": N_("可疑"),
    "removed": N_("已移除"),
    "open": N_("待处理"),
    "accepted": N_("已接受"),
    "rejected": N_("已拒绝"),
}
DONE = {
    "note": N_("备注已保存。"),
    "complaint": N_("投诉已登记，客户将被标记为重点关怀。"),
    "split": N_("已拆分。"),
    "removed": N_("标识已移除，今后不会再关联。"),
    "accept": N_("已接受。"),
    "reject": N_("已拒绝。"),
    "erased": N_("客户已删除：总部不再保存这位客户的个人信息。"),
    "consent": N_("撤回已记录，立即生效：人群导出和触发不再按所选的用途和渠道使用这位客户。"),
}


@bp.context_processor
def labels() -> dict[str, object]:
    """The label tables the customer templates read (and the trigger form, the tags a win-back follows)."""
    return {
        "timeline_labels": TIMELINE_LABELS,
        "field_labels": FIELD_LABELS,
        "purpose_labels": PURPOSE_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "consent_sources": CONSENT_SOURCE_LABELS,
        "consent_verdicts": CONSENT_VERDICT_LABELS,
        "consent_asked": CONSENT_ASKED_LABELS,
        "attribute_labels": ATTRIBUTE_LABELS,
        "tag_labels": TAG_LABELS,
        "review_reasons": REVIEW_REASONS,
        "state_names": STATE_NAMES,
        "ledger_actions": LEDGER_ACTIONS,
        "ledger_rules": LEDGER_RULES,
    }
