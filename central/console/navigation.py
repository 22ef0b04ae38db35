"""The console's navigation and page texts as data: which page each role may open, and its label.

Labels are Chinese message ids; ``translations/en`` holds their English.
"""

from __future__ import annotations

from dataclasses import dataclass

from central.accounts import web
from central.accounts.roles import ADMIN, CUSTOMER_SERVICE, EVERYONE, FINANCE, MARKETING, STORE_MANAGER, TECHNICIAN


@dataclass(frozen=True, slots=True)
class Item:
    """One navigation entry."""

    page: str
    endpoint: str
    label: str
    roles: tuple[str, ...]


CUSTOMER_ROLES = (ADMIN, MARKETING, CUSTOMER_SERVICE)
FLEET_ROLES = (ADMIN, TECHNICIAN, STORE_MANAGER)

NAV = (
    Item("overview", "console.index", "概览", EVERYONE),
    Item("customers", "console.customers", "客户", CUSTOMER_ROLES),
    Item("segments", "console.segments", "人群", (ADMIN, MARKETING)),
    Item("campaigns", "console.campaigns", "营销活动", (ADMIN, MARKETING, FINANCE)),
    Item("sales", "console.sales", "销售日报", (ADMIN, FINANCE, STORE_MANAGER)),
    Item("fleet", "console.fleet", "设备", FLEET_ROLES),
    Item("imports", "console.imports", "导入与任务", (ADMIN,)),
    Item("review", "console.review_queue", "合并审核", (ADMIN,)),
)

ROLE_LABELS = {
    ADMIN: "管理员",
    MARKETING: "市场",
    CUSTOMER_SERVICE: "客服",
    FINANCE: "财务",
    TECHNICIAN: "技术员",
    STORE_MANAGER: "店长",
}

TITLES = {item.page: item.label for item in NAV}

STATE_LABELS = {
    "healthy": "正常",
    "degraded": "降级",
    "offline": "离线",
    "revoked": "已吊销",
    "retired": "已退役",
    "unused": "未使用",
    "used": "已使用",
    "expired": "已过期",
}

# How a visit was seen (presence): names, the same in every language.
MEDIUM_LABELS = {"wifi": "Wi-Fi", "ble": "BLE"}

SEARCH_LABELS = {
    "phone": "手机号",
    "member_card": "会员卡号",
    "member_id": "会员编号",
    "name": "姓名",
    "receipt": "小票号",
}
# Identifier types as the customer pages name them (a custom type from the configuration shows as itself).
IDENTIFIER_LABELS = {
    "phone": "手机号",
    "member_card": "会员卡号",
    "member_id": "会员编号",
    "wechat_unionid": "微信 UnionID",
    "wechat_openid": "微信 OpenID",
    "app_user_id": "App 用户 ID",
    "email": "电子邮件",
    "device_hash": "设备标识",
}


def nav_for(role: str) -> list[Item]:
    """The entries a role may open."""
    return [item for item in NAV if role in item.roles]


TIER_LABELS = {
    "loyal": "忠诚",
    "potential": "潜力",
    "dormant": "沉睡",
    "other": "其他",
    "untiered": "未分层",
    "anonymous": "未领取（匿名券）",
}

JOB_STATUS_LABELS = {
    "running": "运行中",
    "ok": "成功",
    "failed": "失败",
    "completed": "已完成",
    "interrupted": "已中断",
}

# The states an agent reports for its sources (the POS port, scanners, BLE, Wi-Fi); others show as sent.
SOURCE_STATE_LABELS = {
    "starting": "启动中",
    "reading": "读取中",
    "scanning": "扫描中",
    "waiting": "等待设备",
    "up": "正常",
    "down": "故障",
    "replaying": "回放中",
    "finished": "已读完",
    "restarting": "重启中",
    "stopped": "已停止",
    "failed": "失败",
    "interface_unavailable": "网卡不可用",
    "interface_lost": "网卡已断开",
}

# A device's health snapshot (edge_agent.health.HealthMonitor.snapshot), figure by figure, in the
# agent's order; a figure not listed shows by its key.
HEALTH_LABELS = {
    "state": "状态",
    "problem": "问题",
    "agent_version": "版本",
    "uptime_s": "已运行（秒）",
    "queue_depth": "待发送",
    "oldest_unsent_age_s": "最早未发送（秒）",
    "writer_backlog": "待写入",
    "last_sync_at": "最后同步",
    "last_sync_age_s": "距最后同步（秒）",
    "captured": "已采集",
    "delivered": "已送达",
    "shed": "已丢弃（超出配额）",
    "lost_lines": "丢失的行",
    "quarantined": "已隔离",
    "refused_payloads": "被拒绝的内容",
    "dead_lettered": "死信",
    "resent": "应总部要求重发",
    "resend_missing": "要求重发但已不在代理上",
    "disk_free_bytes": "磁盘剩余",
    "clock_offset_s": "时钟偏差（秒）",
    "downlink_version": "下发版本",
    "sync_failures": "连续同步失败",
    "next_attempt_in_s": "下次同步（秒后）",
    "last_error": "最近错误",
    "writer_ok": "写入正常",
    "sync_ok": "同步正常",
    "settings_ignored": "未生效的总部设置",
}
# Why an agent does not apply one of central's settings (shared.agent_settings' reason codes).
IGNORED_SETTING_REASONS = {
    "local_only": "只能在门店电脑上设置",
    "unknown_setting": "代理不认识此设置",
    "invalid_value": "值无效",
    "set_on_pc": "门店电脑的环境变量优先",
}
HEALTH_STATE_LABELS = {"ok": "正常", "degraded": "降级", "stopped": "已停止"}
# What the device page counts of a till's receipts and member scans (central.fleet.till_quality),
# by flag or outcome; one not listed shows by its code.
TILL_RECEIPT_LABELS = {
    "reprint": "重打印（与原单相同，不计）",
    "reprint_total_differs": "重打印但金额不同（不计，待核查）",
    "reprint_unmatched": "重打印但未收到原单（已计为销售）",
    "duplicate_source": "其他来源已上传的同一张小票（不计）",
}
TILL_SCAN_LABELS = {
    "linked": "已关联到销售",
    "unlinked": "未关联销售",
    "doubtful": "存疑（紧跟在无人认领的销售之后）",
    "code_reused": "会员码在别处也被使用（待审核）",
    "unknown_key": "会员码的密钥未知",
}

# Each scheduled job as the operations page names it (a test checks every registered job has one).
JOB_LABELS = {
    "triggers": "执行定时触发规则",
    "webhooks": "投递到期的 Webhook 回调",
    "member_beacons": "发布已同意会员的信标日密钥",
    "segments": "重新计算每个人群的成员",
    "store_alerts": "检查上一个完整营业日新会员下降的门店",
    "reports": "刷新营销活动页的报表（触发效果、按层级核销）",
    "member_cards": "向各门店发布脱敏后的会员卡号",
    "tags": "每晚重新计算标记客户的统计和全部内置标签",
    "name_pinyin": "为新姓名生成拼音，供按拼音搜索",
    "retention": "删除超过保留期限的心跳、任务记录、登录失败计数、Webhook 回调和注册令牌",
}

# What a job's last run counted (central.scheduler's jobs report these keys), by key; a key that
# means something else in one job is worded for that job. A key not listed shows as the job wrote it.
JOB_COUNT_LABELS = {
    "due": "到期的时机",
    "triggers": "触发规则",
    "fired": "已触发",
    "queued": "已排队",
    "control": "对照组",
    "delivered": "已送达",
    "retry": "待重试",
    "dead": "已放弃",
    "cancelled": "已取消",
    "segments": "人群",
    "entered": "进入",
    "left": "离开",
    "refused": "规则无法计算",
    "store_days": "统计的门店日",
    "drops": "下降",
    "recorded": "新记下的提醒",
    "tags": "标签",
    "marked": "标记的客户",
    "seconds": "耗时（秒）",
    "spelled": "生成拼音的姓名",
}
JOB_COUNT_LABELS_BY_JOB = {
    "member_beacons": {"published": "发布新的日密钥"},
    "member_cards": {"published": "发布到的门店"},
    "reports": {"triggers": "刷新的触发效果报表", "campaigns": "刷新的活动报表"},
    "retention": {
        "heartbeats": "删除的心跳",
        "job_runs": "删除的任务记录",
        "login_failures": "删除的登录失败计数",
        "webhook_deliveries": "删除的 Webhook 回调",
        "enroll_tokens": "删除的注册令牌",
    },
}

# Why an import rejected a row (the reason's code, before any ':' detail), as the import page says it.
REJECT_REASON_LABELS = {
    "no_identifier": "没有可用的标识（手机号、会员号、卡号等缺失或无效）",
    "empty_row": "空行",
    "malformed_row": "字段数与表头不符",
    "invalid_identifiers": "标识的格式无效",
    "invalid_identifier": "标识的格式无效",
    "invalid_app_id": "应用 ID 无效",
    "invalid_attributes": "资料字段无效",
    "invalid_attribute": "资料字段无效",
}

OUTCOME_LABELS = {
    "new": "新客户",
    "merged": "合并",
    "suggestion": "建议",
    "conflict": "冲突",
    "rejected": "被拒绝",
    "duplicate": "重复",
}

# The campaign forms: trigger kinds, their parameters, consent purposes and actions.
TRIGGER_KIND_LABELS = {
    "birthday": "生日",
    "second_item": "首购后再次购买",
    "win_back": "沉睡唤回",
    "repurchase_due": "复购到期",
    "complaint": "投诉跟进",
}
PARAM_LABELS = {
    "days_before": "提前天数",
    "hours": "首购后小时数",
    "grace_hours": "补触发时限（小时）",
    "unless_bought_again": "仅限未再次购买的客户",
    "tag": "依据的标签",
    "within_hours": "投诉后小时数内",
}
PURPOSE_LABELS = {"marketing": "营销", "service": "客户服务"}
ACTION_LABELS = {"coupon": "发放优惠券", "export": "加入导出名单", "webhook": "Webhook 回调"}

# What an error page says, by status (Chinese message ids).
ERROR_TEXTS = {
    400: "请求无法读取。",
    403: "你的角色不能打开这个页面。",
    404: "没有这个页面。",
    405: "这个页面不接受这种请求。",
    413: "提交的内容太大。",
    429: "请求太频繁，请稍后再试。",
    500: "服务器出错了，错误已记入日志。请稍后再试。",
    503: "数据库暂时不可用，请稍后再试。",
}
# Refusals whose reason is worth its own sentence (central.accounts.web aborts with these).
ERROR_REASONS = {
    web.FORM_EXPIRED: "表单已过期，或不是从本控制台提交的。请刷新页面后重试。",
    web.CROSS_SITE: "拒绝来自其他网站的请求。",
}
