"""The text of generated Chinese receipts: a supermarket and a convenience-store layout.

Each renderer lays out the lines at 32 (58 mm) or 48 (80 mm) columns, counting Chinese
characters as two, and fills in the sale fields exactly as they are printed (paid, change,
card, member), so the expected sale is what the printed text says.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")


@dataclass
class Line:
    """A line of text and how the till styles it."""

    text: str
    big: bool = False
    bold: bool = False
    centre: bool = False


def width(text: str) -> int:
    """Printed columns: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def left(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


def right(text: str, columns: int) -> str:
    return " " * max(0, columns - width(text)) + text


def spread(first: str, last: str, columns: int) -> str:
    """``first`` and ``last`` on one line ``columns`` wide, at least two spaces apart."""
    return first + " " * max(2, columns - width(first) - width(last)) + last


def money(value: Decimal) -> str:
    return format(value.quantize(CENT, ROUND_HALF_UP), "f")


def qty_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    """A Luhn-valid card number."""
    digits = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


@dataclass
class Order:
    """What was bought and paid, before it is laid out."""

    sale: dict[str, Any]  # the expected sale, completed by the layout
    when: datetime
    items: list[dict[str, Any]]
    extra: list[tuple[str, Decimal]]  # receipt-level discounts
    shown: str  # the payment method as printed
    subtotal: Decimal
    paid: Decimal
    card_data: bool
    secrets: list[str]


class Layout:
    """Renders an order as the lines of one receipt."""

    def __init__(self, rng: random.Random, columns: int, order: Order) -> None:
        self.rng, self.columns, self.order, self.sale = rng, columns, order, order.sale
        self.separator = rng.choice("-=") * columns

    def datetime_line(self, labels: tuple[str, ...]) -> str:
        fmt = self.rng.choice(["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y年%m月%d日 %H:%M:%S", "%Y-%m-%d %H:%M"])
        when = self.order.when if "%S" in fmt else self.order.when.replace(second=0)
        self.sale["datetime"] = when.isoformat()
        label = self.rng.choice(labels)
        return (f"{label}:" if label else "") + when.strftime(fmt)

    def discounts(self) -> list[tuple[str, Decimal]]:
        item_off = sum((i["off"] for i in self.order.items), Decimal(0))
        return ([(self.rng.choice(["单品优惠", "优惠金额", "折扣"]), item_off)] if item_off else []) + self.order.extra

    def payment_and_member(self, lines: list[Line], method_line: bool) -> None:
        rng, sale, order = self.rng, self.sale, self.order
        change = order.paid - Decimal(sale["total"])
        if method_line:
            lines.append(Line(f"{rng.choice(['支付方式', '付款方式'])}:{order.shown}"))
            if sale["payment_method"] == "cash" or rng.random() < 0.5:
                lines.append(Line(f"实收:{rng.choice(['', '￥'])}{money(order.paid)}", bold=rng.random() < 0.3))
                sale["paid"] = money(order.paid)
        else:
            lines.append(Line(f"{order.shown}:{money(order.paid)}"))
            sale["paid"] = money(order.paid)
            sale["tenders"] = [{"method": sale["payment_method"], "amount": money(order.paid)}]
        if sale["payment_method"] == "cash" or (sale["paid"] and rng.random() < 0.3):
            lines.append(Line(f"找零:{money(change)}"))
            sale["change"] = money(change)
        if sale["payment_method"] == "bank_card":
            prefix = rng.choice(["6222", "6228", "4367", "5187", "3782"])
            pan = luhn_number(rng, prefix, 15 if prefix == "3782" else rng.choice([16, 16, 19]))
            if order.card_data:
                order.secrets.append(pan)
                printed = rng.choice(
                    [
                        pan,
                        " ".join(pan[i : i + 4] for i in range(0, len(pan), 4)),
                        "-".join(pan[i : i + 4] for i in range(0, len(pan), 4)),
                    ]
                )
                if len(pan) == 15:  # American Express prints 4-6-5
                    printed = f"{pan[:4]} {pan[4:10]} {pan[10:]}".replace(" ", rng.choice([" ", "-"]))
            else:
                printed = rng.choice(
                    [f"{pan[:4]} **** **** {pan[-4:]}", f"{pan[:6]}******{pan[-4:]}", f"**** {pan[-4:]}"]
                )
            lines.append(Line(f"{rng.choice(['卡号', '银行卡号'])}:{printed}"))
            sale["card_last4"] = pan[-4:]
            if order.card_data:
                expiry = f"{rng.randint(26, 35)}{rng.randint(1, 12):02d}"
                track = f";{pan}={expiry}{rng.randint(100, 999)}{rng.randint(10**9, 10**10 - 1)}?"
                cvv = f"CVV:{rng.randint(100, 999)}"
                order.secrets += [track, cvv]
                lines += [Line(track), Line(cvv)]
        if rng.random() < 0.5:
            card = rng.choice(
                [f"88{rng.randint(10**7, 10**8 - 1)}", f"VIP{rng.randint(10**6, 10**7 - 1)}", luhn_number(rng, "9", 16)]
            )
            lines.append(Line(f"{rng.choice(['会员卡号', '会员号'])}:{card}"))
            sale["member_card"] = card
        if rng.random() < 0.5:
            phone = f"1{rng.choice('3456789')}{rng.randint(10**8, 10**9 - 1)}"
            phone = rng.choice([phone, f"{phone[:3]}****{phone[-4:]}"])
            lines.append(Line(f"会员手机:{phone}"))
            sale["member_phone"] = phone

    def add_item(self, item: dict[str, Any], sku: str | None, amount_text: str) -> None:
        self.sale["items"].append(
            {
                "name": item["name"],
                "sku": sku,
                "qty": qty_text(item["qty"]),
                "unit_price": money(item["price"]),
                "amount": amount_text,
            }
        )


class Supermarket(Layout):
    """Header block, a column header, items on one line (or two when the name is long), totals."""

    def render(self) -> list[Line]:
        rng, sale, order, cols = self.rng, self.sale, self.order, self.columns
        lines = [Line(sale["store_name"], big=rng.random() < 0.7, centre=True)]
        if rng.random() < 0.5:
            lines.append(Line("欢迎光临", centre=True))
        if rng.random() < 0.3:
            lines.append(Line(f"电话:021-{rng.randint(10**7, 10**8 - 1)}", centre=True))
        lines.append(Line(self.separator))
        lines.append(Line(f"{rng.choice(['单号', '流水号', '小票号'])}:{sale['receipt_no']}"))
        register = f"{rng.choice(['机号', '款台'])}:{sale['register']}"
        cashier = f"收银员:{sale['cashier']}"
        lines += (
            [Line(f"{register}    {cashier}")] if cols == 48 and rng.random() < 0.7 else [Line(register), Line(cashier)]
        )
        lines.append(Line(self.datetime_line(("日期", "时间"))))
        lines.append(Line(self.separator))
        name_col, qty_col, price_col, amount_col = (cols - 24, 6, 9, 9) if cols == 48 else (cols - 20, 4, 8, 8)
        lines.append(
            Line(
                left(rng.choice(["品名", "商品名称"]), name_col)
                + right("数量", qty_col)
                + right("单价", price_col)
                + right("金额", amount_col)
            )
        )
        with_sku = rng.random() < 0.3
        for item in order.items:
            numbers = (
                right(qty_text(item["qty"]), qty_col)
                + right(money(item["price"]), price_col)
                + right(money(item["amount"]), amount_col)
            )
            if not with_sku and width(item["name"]) < name_col:
                lines.append(Line(left(item["name"], name_col) + numbers))
                self.add_item(item, None, money(item["amount"]))
            else:
                lines.append(Line(f"{item['sku']} {item['name']}" if with_sku else item["name"]))
                lines.append(Line(" " * name_col + numbers))
                self.add_item(item, item["sku"] if with_sku else None, money(item["amount"]))
            if item["off"]:
                lines.append(Line(f"  {rng.choice(['优惠', '促销'])} -{money(item['off'])}"))
        lines.append(Line(self.separator))
        count = f"件数:{len(order.items)}"
        subtotal = f"合计:{money(order.subtotal)}"
        lines += [Line(f"{count}    {subtotal}")] if cols == 48 else [Line(count), Line(subtotal)]
        for label, off in self.discounts():
            lines.append(Line(f"{label}:-{money(off)}"))
        if sale["discount_total"] or rng.random() < 0.5:
            lines.append(Line(f"应收:{rng.choice(['', '￥'])}{sale['total']}", bold=True, big=rng.random() < 0.3))
        self.payment_and_member(lines, method_line=True)
        if rng.random() < 0.5:
            lines.append(Line(f"本次积分:{int(Decimal(sale['total']))}"))
        lines += [Line(self.separator), Line("谢谢惠顾 欢迎再次光临", centre=True)]
        return lines


class Convenience(Layout):
    """A short header, items as name then "qty x price  amount", the payment as "method:amount"."""

    def render(self) -> list[Line]:
        rng, sale, order, cols = self.rng, self.sale, self.order, self.columns
        lines = [Line(sale["store_name"], big=rng.random() < 0.5, centre=rng.random() < 0.8)]
        lines.append(Line(f"店号:{rng.randint(1000, 9999)}  {rng.choice(['款台', '机号'])}:{sale['register']}"))
        lines.append(Line(f"{rng.choice(['流水号', '单号'])}:{sale['receipt_no']}"))
        lines.append(Line(f"收银员:{sale['cashier']}"))
        lines.append(Line(self.datetime_line(("", "时间"))))
        lines.append(Line("-" * cols))
        for item in order.items:
            amount = money(item["amount"])
            if item["qty"] == 1 and width(item["name"]) + width(amount) + 2 <= cols:
                lines.append(Line(spread(item["name"], amount, cols)))
            else:
                lines.append(Line(item["name"]))
                lines.append(
                    Line(
                        spread(
                            f"  {qty_text(item['qty'])} {rng.choice(['x', '×', '*'])} {money(item['price'])}",
                            amount,
                            cols,
                        )
                    )
                )
            self.add_item(item, None, amount)
            if item["off"]:
                lines.append(Line(spread("  优惠", f"-{money(item['off'])}", cols)))
        lines.append(Line("-" * cols))
        lines.append(Line(f"商品数:{len(order.items)}"))
        lines.append(Line(f"合计:{money(order.subtotal)}"))
        for label, off in self.discounts():
            lines.append(Line(f"{label}:-{money(off)}"))
        if sale["discount_total"] or rng.random() < 0.7:
            lines.append(Line(f"应付:{sale['total']}", bold=True))
        self.payment_and_member(lines, method_line=False)
        lines.append(Line("谢谢光临", centre=True))
        return lines
