"""The console's navigation and page texts as data: which page each role may open, and its label.

Labels are Chinese message ids; ``translations/en`` holds their English.
"""

from __future__ import annotations

from dataclasses import dataclass

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

COMING = {
    "segments": "即将推出：用标签和属性圈选人群并实时计数，以及导出。",
    "campaigns": "即将推出：触发规则与优惠券活动，以及发放、核销、冲突和按层级、门店的核销率。",
    "imports": "即将推出：历史会员导入的进度与报告，以及定时任务的上次运行。",
}

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

SEARCH_LABELS = {"phone": "手机号", "member_card": "会员卡号", "member_id": "会员编号", "name": "姓名"}


def nav_for(role: str) -> list[Item]:
    """The entries a role may open."""
    return [item for item in NAV if role in item.roles]
