"""Chinese receipts as ESC/POS bytes in GBK or GB18030, each with the sale it prints.

No real Chinese printer capture is public, so the till's path is tested on generated ones:
supermarket and convenience-store layouts (the shipped profiles ``cn-supermarket`` and
``cn-convenience``), 58 mm and 80 mm, items on one or two lines, discounts, every payment method,
members, styles, logos, QR codes and barcodes, with and without a reset or a cut. ``receipt()``
returns the bytes and the sale exactly as ``edge-agent parse --json`` must report it;
``stream()`` joins several, marking where only an idle gap can separate two receipts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tools.escpos_bytes import CHINESE_MODES, CUTS, RESET, code128, logo, qr_code, styled
from tools.receipt_layouts import CENT, Convenience, Order, Supermarket, luhn_number, money

GOODS = (
    ("农夫山泉 饮用天然水 550ml", "2.00"),
    ("可口可乐 330ml", "3.50"),
    ("康师傅红烧牛肉面", "4.50"),
    ("伊利纯牛奶 250ml", "3.20"),
    ("蒙牛酸酸乳", "2.80"),
    ("乐事薯片 原味 70g", "7.90"),
    ("奥利奥饼干 116g", "9.90"),
    ("德芙巧克力 43g", "8.50"),
    ("维达抽纸 3包", "12.90"),
    ("海飞丝洗发水 400ml", "49.90"),
    ("金龙鱼大米 5kg", "39.90"),
    ("鲁花花生油 1.8L", "69.90"),
    ("老干妈风味豆豉", "11.50"),
    ("双汇王中王火腿肠", "6.80"),
    ("三只松鼠 每日坚果", "29.90"),
    ("旺仔牛奶 245ml", "4.80"),
    ("雀巢咖啡 1+2 原味", "32.00"),
    ("统一冰红茶 500ml", "3.00"),
    ("青岛啤酒 500ml", "5.50"),
    ("饭团(金枪鱼)", "6.50"),
    ("关东煮 萝卜", "2.00"),
    ("茶叶蛋", "1.50"),
    ("包子(猪肉大葱)", "3.00"),
    ("清风卷纸 10卷", "24.90"),
    ("高露洁牙膏 140g", "13.90"),
    ("光明莫斯利安", "6.50"),
    ("洽洽香瓜子 260g", "10.90"),
    ("良品铺子 猪肉脯", "19.90"),
    ("Coca-Cola Zero 500ml", "3.80"),
)
WEIGHED = (("散装鸡蛋", "12.80"), ("香蕉", "7.98"), ("红富士苹果", "11.60"), ("五花肉", "32.00"), ("大白菜", "2.58"))
GB18030_ONLY = (("𠮷野家 牛肉饭", "25.00"), ("䶮记 手撕面包", "9.80"))  # characters GBK lacks
SUPERMARKETS = (
    "联华超市(南京西路店)",
    "华润万家(深南店)",
    "永辉超市(五角场店)",
    "物美超市(中关村店)",
    "大润发(杨浦店)",
)
CONVENIENCE = (
    "全家FamilyMart(人民广场店)",
    "罗森LAWSON(徐家汇店)",
    "7-ELEVEn(体育西路店)",
    "美宜佳(龙华店)",
    "便利蜂(望京店)",
)
CASHIERS = ("王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄丽")
PAYMENTS = (
    ("微信支付", "wechat"),
    ("微信", "wechat"),
    ("支付宝", "alipay"),
    ("现金", "cash"),
    ("银行卡", "bank_card"),
    ("云闪付", "unionpay_qr"),
    ("储值卡", "stored_value"),
    ("会员储值", "stored_value"),
)


@dataclass
class GeneratedReceipt:
    """A receipt's printer bytes and what parsing them must give."""

    data: bytes
    sale: dict[str, Any]
    codes: list[dict[str, str]]
    reset: bool
    cut: bool
    secrets: list[str] = field(default_factory=list)  # card numbers, track data and CVV printed


def ean13(name: str) -> str:
    """A stable EAN-13 with a Chinese (69x) prefix and a valid check digit for a product name."""
    body = "69" + "".join(random.Random(name).choice("0123456789") for _ in range(10))
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


def _items(rng: random.Random, gb18030: bool, count: int | None = None) -> list[dict[str, Any]]:
    goods = list(GOODS) + (list(GB18030_ONLY) if gb18030 else [])
    items = []
    for _ in range(rng.randint(1, 10) if count is None else count):
        if rng.random() < 0.15:
            name, price = rng.choice(WEIGHED)
            name += "(kg)"
            qty = Decimal(rng.randint(100, 2500)) / 1000
        else:
            name, price = rng.choice(goods)
            qty = Decimal(rng.choice([1, 1, 1, 2, 3, 5]))
        amount = (qty * Decimal(price)).quantize(CENT, ROUND_HALF_UP)
        off = Decimal(rng.choice([50, 100, 150])) / 100 if rng.random() < 0.15 and amount > 2 else Decimal(0)
        items.append(
            {"name": name, "sku": ean13(name), "qty": qty, "price": Decimal(price), "amount": amount, "off": off}
        )
    return items


def receipt(
    rng: random.Random,
    *,
    layout: str | None = None,
    encoding: str | None = None,
    reset: bool | None = None,
    cut: bool | None = None,
    card_data: bool = False,
    payment: str | None = None,
    items: int | None = None,
    columns: int | None = None,
) -> GeneratedReceipt:
    """One random receipt; ``card_data`` prints a full card number, track data and a CVV when the
    payment is by bank card (``payment="bank_card"`` makes sure it is); ``items`` sets how many items
    (1-10 otherwise) and ``columns`` the paper width (32 or 48)."""
    layout = layout or rng.choice(["cn-supermarket", "cn-convenience"])
    encoding = encoding or rng.choice(["gbk", "gb18030"])
    reset = rng.random() < 0.8 if reset is None else reset
    cut = rng.random() < 0.8 if cut is None else cut
    total_width = rng.choice([32, 48]) if columns is None else columns
    when = datetime(2026, 1, 1) + timedelta(seconds=rng.randrange(365 * 86400))
    bought = _items(rng, encoding == "gb18030", items)
    subtotal = sum((i["amount"] for i in bought), Decimal(0))
    item_off = sum((i["off"] for i in bought), Decimal(0))
    extra: list[tuple[str, Decimal]] = []
    for label in ("会员优惠", "满减优惠"):
        off = Decimal(rng.choice([100, 200, 500])) / 100
        if rng.random() < 0.2 and subtotal - item_off - off - sum(o for _, o in extra) >= 1:
            extra.append((label, off))
    discount = item_off + sum((off for _, off in extra), Decimal(0))
    total = subtotal - discount
    shown, method = rng.choice([p for p in PAYMENTS if payment in (None, p[1])])
    paid = total
    if method == "cash":
        paid = next(Decimal(n) for n in (10, 20, 50, 100, 200, 500, 1000, 10**6) if n >= total)
        paid = rng.choice([paid, total])
    sale: dict[str, Any] = {
        "profile": layout,
        "receipt_no": None,
        "datetime": when.isoformat(),
        "store_name": rng.choice(SUPERMARKETS if layout == "cn-supermarket" else CONVENIENCE),
        "register": f"{rng.randint(1, 12):02d}",
        "cashier": rng.choice(
            [f"{rng.randint(1001, 1099)}", rng.choice(CASHIERS), f"{rng.randint(1001, 1099)} {rng.choice(CASHIERS)}"]
        ),
        "items": [],
        "discount_total": money(discount) if discount else None,
        "tax_total": None,
        "total": money(total),
        "paid": None,
        "change": None,
        "payment_method": method,
        "tenders": [],
        "card_last4": None,
        "member_card": None,
        "member_phone": None,
        "warnings": [],
    }
    sale["receipt_no"] = rng.choice(
        [
            "".join(rng.choice("0123456789") for _ in range(rng.randint(12, 20))),
            f"{when:%y%m%d}{rng.randint(1, 9999):04d}",
            f"A{rng.randint(1000, 9999)}-{when:%y%m%d}-{rng.randint(1, 9999):04d}",
        ]
    )
    secrets: list[str] = []
    order = Order(sale, when, bought, extra, shown, subtotal, paid, card_data, secrets)
    body = (Supermarket if layout == "cn-supermarket" else Convenience)(rng, total_width, order).render()
    codes: list[dict[str, str]] = []
    tail = b""
    if rng.random() < 0.5:
        url = f"https://fp.example.cn/i?no={sale['receipt_no']}&amt={sale['total']}"
        if card_data:
            card = luhn_number(rng, "6222", 16)
            secrets.append(card)
            url += f"&card={card}"
        tail += qr_code(url.encode(), rng) + b"\n"
        codes.append({"symbology": "qr", "data": url})
    if rng.random() < 0.4:
        tail += code128(sale["receipt_no"].encode()) + b"\n"
        codes.append({"symbology": "code128", "data": sale["receipt_no"]})
    newline = rng.choice([b"\n", b"\r\n"])
    head = (RESET if reset else b"") + CHINESE_MODES[rng.choice(list(CHINESE_MODES))]
    if encoding == "gb18030" and rng.random() < 0.5:
        head += b"\x1b9\x00"  # some GB18030 printers want ESC 9 0 too
    if rng.random() < 0.4:
        head += logo(rng) + b"\n"
    lines = b"".join(
        styled(line.text.encode(encoding), rng, big=line.big, bold=line.bold, centre=line.centre) + newline
        for line in body
    )
    end = rng.choice([b"\x1bd\x04", b"\n\n\n\n"]) + rng.choice(CUTS) if cut else b""
    if method == "cash" and rng.random() < 0.5:
        end += b"\x1bp\x00\x19\xfa"  # open the cash drawer
    return GeneratedReceipt(head + lines + tail + end, sale, codes, reset, cut, secrets)


@dataclass
class GeneratedStream:
    """Several receipts as one printer stream, in the reads a port would deliver them."""

    receipts: list[GeneratedReceipt]
    reads: list[tuple[float, bytes]]  # (seconds since the start, bytes read)

    @property
    def data(self) -> bytes:
        """The whole stream."""
        return b"".join(data for _, data in self.reads)


def stream(rng: random.Random, count: int, *, idle_gap: float | None = 2.0, **options: Any) -> GeneratedStream:
    """``count`` receipts, minutes apart, each sent in reads of 1-256 bytes a few ms apart.

    With ``idle_gap`` None the stream must split without idle gaps: a receipt that has no reset
    never follows one that has no cut. Otherwise receipts with neither rely on the gap, except in a
    stream that has framed every receipt with a reset and a cut so far: there a gap is a pause inside
    a receipt (docs/decisions/0090), so the receipt after one that skips its cut has a reset.
    """
    receipts: list[GeneratedReceipt] = []
    for _ in range(count):
        made = receipt(rng, **options)
        framed = bool(receipts) and receipts[-1].reset and all(r.reset and r.cut for r in receipts[:-1])
        if receipts and not receipts[-1].cut and not made.reset and (idle_gap is None or framed):
            made = receipt(rng, **{**options, "reset": True})
        receipts.append(made)
    reads: list[tuple[float, bytes]] = []
    now = 0.0
    for made in receipts:
        now += rng.uniform(3 * (idle_gap or 1), 90)
        for start in range(0, len(made.data), 256):
            block = made.data[start : start + 256]
            cut = rng.randint(1, len(block))
            for piece in (block[:cut], block[cut:]):
                if piece:
                    reads.append((round(now, 3), piece))
                    now += rng.uniform(0.001, 0.05)
    return GeneratedStream(receipts, reads)
