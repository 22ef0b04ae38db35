"""Search by the start of a name: 张 finds every 张…, in pages, from an index, masked for marketing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from central import db as central_db
from central.customers.name_search import KEY, PINYIN, fill_pinyin, find_by_name, find_by_name_prefix, prefix_query
from central.identity.models import GoldenAttribute
from central.models import AuditLog
from tests.central.sources_support import new_key, post_events, source_event
from tests.central.support import create_user, login, table_rows
from tests.central.test_console_roles import MOBILE

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
# 张 (U+5F20) and 章 (U+7AE0) are different surnames; 張 is 张 in traditional characters.
NAMES = ["张伟明", "李四", "张三丰", "章子怡", "张伟", "张", "張學友", "Zhang Wei"]


def _sign_up(app, client, names, first_phone=13812340000):
    events = [
        source_event(f"n{first_phone + n}", "member.signup", identifiers={"phone": str(first_phone + n)}, name=name)
        for n, name in enumerate(names)
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert len(reply["accepted"]) == len(names), reply


def _names(app, customer_ids):
    with central_db.session_factory(app)() as db:
        found = dict(
            db.execute(
                select(GoldenAttribute.customer_id, GoldenAttribute.value).where(GoldenAttribute.attribute == "name")
            ).all()
        )
    return [found[c] for c in customer_ids]


def _search(app, prefix, limit=50, after=None):
    with central_db.session_factory(app)() as db:
        return find_by_name_prefix(db, prefix, limit, after)


def _pages(app, typed, *limits):
    """Every page of the search for ``typed``, as names; page n holds ``limits[n]`` (the last limit thereafter)."""
    pages, after = [], None
    while True:
        ids, after = _search(app, typed, limit=limits[min(len(pages), len(limits) - 1)], after=after)
        pages.append(_names(app, ids))
        if after is None:
            return pages


def test_a_prefix_finds_every_name_it_starts_in_code_point_order_a_page_at_a_time(app, client):
    _sign_up(app, client, NAMES)
    ids, more = _search(app, "张")
    # In key order: 張學友 is 张学友 folded, after 张伟明 (学 U+5B66 follows 伟 U+4F1F).
    assert _names(app, ids) == ["张", "张三丰", "张伟", "张伟明", "張學友"] and more is None
    assert _names(app, _search(app, " 张伟 ")[0]) == ["张伟", "张伟明"]
    assert _names(app, _search(app, "章")[0]) == ["章子怡"]
    assert _names(app, _search(app, "Zhang")[0]) == ["Zhang Wei"]
    assert _search(app, "王") == ([], None) and _search(app, "  ") == ([], None)
    assert _pages(app, "张", 3, 1) == [["张", "张三丰", "张伟"], ["张伟明"], ["張學友"]]


def test_the_search_folds_spaces_width_case_and_traditional_characters_as_the_names_do(app, client):
    _sign_up(app, client, ["丁 佳", "Ｌｉ Ｌｅｉ", "劉德華", "王·芳"])
    assert _names(app, _search(app, "丁佳")[0]) == ["丁 佳"]
    assert _names(app, _search(app, "丁 佳")[0]) == ["丁 佳"]
    assert _names(app, _search(app, "li lei")[0]) == ["Ｌｉ Ｌｅｉ"]
    assert _names(app, _search(app, "LI")[0]) == ["Ｌｉ Ｌｅｉ"]
    assert _names(app, _search(app, "刘德")[0]) == ["劉德華"]
    assert _names(app, _search(app, "王芳")[0]) == ["王·芳"]
    assert _search(app, " · ") == ([], None)
    with central_db.session_factory(app)() as db:
        found = {typed: find_by_name(db, typed) for typed in ("刘德华", "丁佳", "丁", " ")}
    assert _names(app, found["刘德华"]) == ["劉德華"] and _names(app, found["丁佳"]) == ["丁 佳"]
    assert found["丁"] == [] and found[" "] == []


def test_invisible_format_characters_neither_hide_a_name_nor_make_one(app, client):
    _sign_up(app, client, ["\u202eevil\u202c", "张\u200b三", "\u200b"])
    assert _names(app, _search(app, "evil")[0]) == ["evil"]
    assert _names(app, _search(app, "张三")[0]) == ["张三"]
    assert _names(app, _search(app, "张\u200b三")[0]) == ["张三"]
    assert len(table_rows(app, GoldenAttribute)) == 2  # the third signed up with no name


def _plan(app, postgres, spelled=False):
    compared = PINYIN if spelled else KEY
    query = prefix_query(
        postgres, "zhang" if spelled else "张", 51, ("zhangwei" if spelled else "张伟", 3), compared=compared
    )
    with central_db.session_factory(app)() as db:
        sql = str(query.compile(db.get_bind(), compile_kwargs={"literal_binds": True}))
        if postgres:
            # An empty table would be read whole: ask whether the index can serve at all, and in order.
            # (A sort is ruled out too: the shared test database keeps the statistics other tests'
            # loads gathered, and with them a small table is cheaper to sort than to read in order.)
            db.execute(select(1))
            db.connection().exec_driver_sql("SET LOCAL enable_seqscan = off")
            db.connection().exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            db.connection().exec_driver_sql("SET LOCAL enable_sort = off")
            return "\n".join(r[0] for r in db.connection().exec_driver_sql("EXPLAIN " + sql))
        return "\n".join(r[-1] for r in db.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))


@pytest.mark.parametrize("spelled", [False, True], ids=["characters", "pinyin"])
def test_the_search_reads_the_names_index_in_order_not_the_table(app, backend, spelled):
    postgres = backend.name == "postgresql"
    plan = _plan(app, postgres, spelled)
    index = "ix_golden_attributes_name_pinyin" if spelled else "ix_golden_attributes_name_key"
    if postgres:
        assert index in plan and "Sort" not in plan, plan
    else:
        assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
        assert "SCAN golden_attributes" not in plan, plan


@SQLITE_ONLY
def test_marketing_finds_by_surname_sees_masked_names_and_pages_on_customer_service_by_whole_name(app, client):
    _sign_up(app, client, ["张三丰", "张伟", "李四"])
    _sign_up(app, client, [f"王{chr(0x4E00 + n)}" for n in range(52)], first_phone=13912340000)
    create_user(app, "marketing", role="marketing")
    create_user(app, "admin", role="admin")
    marketing, admin = app.test_client(), app.test_client()
    assert login(marketing, "marketing").status_code == 302 and login(admin, "admin").status_code == 302

    page = marketing.get("/console/customers?kind=name&q=张").get_data(as_text=True)
    assert page.count("<td>张*</td>") == 2 and "张三丰" not in page and "张伟" not in page and "李" not in page
    assert not MOBILE.search(page)
    assert "张三丰" in admin.get("/console/customers?kind=name&q=张").get_data(as_text=True)

    first = marketing.get("/console/customers?kind=name&q=王").get_data(as_text=True)
    assert first.count("<td>王*</td>") == 50 and 'id="next-found"' in first
    after = first.split('id="next-found" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "after=" in after and "王" not in after.split("after=", 1)[1]  # the cursor carries no name
    second = marketing.get(after).get_data(as_text=True)
    assert second.count("<td>王*</td>") == 2 and 'id="next-found"' not in second
    assert not MOBILE.search(first + second)
    create_user(app, "customer_service", role="customer_service")
    service = app.test_client()
    assert login(service, "customer_service").status_code == 302
    assert "<td>张*</td>" not in service.get("/console/customers?kind=name&q=张").get_data(as_text=True)
    assert service.get("/console/customers?kind=name&q=张伟").get_data(as_text=True).count("<td>张*</td>") == 1
    searches = [(a.actor, a.subject) for a in table_rows(app, AuditLog) if a.action == "customers.search"]
    assert ("marketing", "name:张*") in searches and ("marketing", "name:王*") in searches


@SQLITE_ONLY
@pytest.mark.parametrize("role", ["admin", "marketing", "customer_service"])
@pytest.mark.parametrize("typed", ["_", "·", "\u200b", "--"])
def test_a_name_of_punctuation_only_finds_no_one_and_is_audited(app, role, typed):
    """Nothing is left of it to search by: the page says nothing was found (it was a 503 saying the
    database was read-only, and an ERROR line, as the search's audit row was written in the page's
    read-only transaction)."""
    create_user(app, "someone", role=role)
    browser = app.test_client()
    assert login(browser, "someone").status_code == 302
    page = browser.get("/console/customers", query_string={"kind": "name", "q": typed})
    assert page.status_code == 200
    assert "<td>" not in page.get_data(as_text=True)
    assert [a.actor for a in table_rows(app, AuditLog) if a.action == "customers.search"] == ["someone"]


def test_a_masked_number_typed_into_the_search_says_to_ask_for_the_whole_number(app):
    create_user(app, "desk", role="customer_service")
    desk = app.test_client()
    assert login(desk, "desk").status_code == 302
    page = desk.get("/console/customers", query_string={"kind": "phone", "q": "177****6492"}).get_data(as_text=True)
    assert "打了星号的号码无法搜索" in page and "这个值无法识别任何客户" not in page
    page = desk.get("/console/customers", query_string={"kind": "phone", "q": "17744"}).get_data(as_text=True)
    assert "这个值无法识别任何客户" in page


def test_a_masked_role_cannot_spell_out_a_name_one_letter_at_a_time(app, client):
    """Marketing sees 张*; if 张三 and then zhangs still found the customer, a script could extend the
    prefix a letter at a time and read the whole name from whether the customer stays in the results."""
    _sign_up(app, client, ["张三丰", "张伟"])
    _spell(app)
    create_user(app, "marketing", role="marketing")
    create_user(app, "admin", role="admin")
    marketing, admin = app.test_client(), app.test_client()
    assert login(marketing, "marketing").status_code == 302 and login(admin, "admin").status_code == 302

    def found(console, query):
        page = console.get(f"/console/customers?kind=name&q={query}").get_data(as_text=True)
        if 'id="results"' not in page:
            return 0
        return page.split('id="results"', 1)[1].split("</table>", 1)[0].count("<tr><td><a")

    for prefix in ("张三", "zhangs", "zhangsan", "zs"):
        assert found(marketing, prefix) == 0, prefix  # a part of a name is not a name
        assert found(admin, prefix) == 1, prefix
    assert found(marketing, "张") == found(marketing, "z") == 2  # the surname the mask shows
    assert found(marketing, "张三丰") == found(marketing, "張三豐") == 1  # the whole name, as customer service
    # Spellings are few enough guesses to read a masked name by: initials (zsf), or syllables after the
    # surname the mask shows (zhangsanfeng). Masked roles type the characters.
    for spelled in ("zhangsanfeng", "zsf", "zhang san feng"):
        assert found(marketing, spelled) == 0, spelled
        assert found(admin, spelled) == 1, spelled


@SQLITE_ONLY
def test_found_and_listed_customers_show_name_masked_identifiers_purchases_and_last_contact(app, client):
    """Two 张伟 are told apart by their masked phones; the newest customers' list shows names too."""
    _sign_up(app, client, ["张伟", "张伟"])
    create_user(app, "admin", role="admin")
    create_user(app, "marketing", role="marketing")
    admin, marketing = app.test_client(), app.test_client()
    assert login(admin, "admin").status_code == 302 and login(marketing, "marketing").status_code == 302

    found = admin.get("/console/customers?kind=name&q=张伟").get_data(as_text=True)
    table = found.split('id="results"', 1)[1].split("</table>", 1)[0]
    assert table.count("<td>张伟</td>") == 2 and "138****0000" in table and "138****0001" in table
    assert '<td class="num">0</td>' in table and "UTC+08:00" in table
    by_phone = admin.get("/console/customers?kind=phone&q=13812340001").get_data(as_text=True)
    assert "<td>张伟</td>" in by_phone and "138****0001" in by_phone and "138****0000" not in by_phone

    listed = marketing.get("/console/customers").get_data(as_text=True)
    table = listed.split('id="recent"', 1)[1].split("</table>", 1)[0]
    assert table.count("<td>张*</td>") == 2 and "138****0001" in table and not MOBILE.search(table)


def _spell(app):
    with central_db.session_factory(app)() as db:
        return fill_pinyin(db, batch=3)  # several batches


def test_names_are_found_by_their_pinyin_once_the_job_has_spelled_them(app, client):
    _sign_up(app, client, NAMES)
    # Before the job: Latin letters find the names written in Latin letters, which are their own spelling.
    assert _names(app, _search(app, "zhang")[0]) == ["Zhang Wei"]
    assert _spell(app) == 7 and _spell(app) == 0  # every Han name once; nothing left the second time
    assert _names(app, _search(app, "zhangwei")[0]) == ["张伟", "Zhang Wei", "张伟明"]  # by spelling, then record
    assert _names(app, _search(app, "Zhang Wei")[0]) == ["张伟", "Zhang Wei", "张伟明"]
    assert _names(app, _search(app, "zhangxue")[0]) == ["張學友"]  # traditional characters spell the same
    assert _names(app, _search(app, "zhangzi")[0]) == ["章子怡"]  # another 张 sound, another surname
    assert _names(app, _search(app, "li")[0]) == ["李四"]
    assert _names(app, _search(app, "张")[0])[0] == "张"  # characters still search the characters
    pages = _pages(app, "zhang", 4)
    assert [len(p) for p in pages] == [4, 3] and "章子怡" in pages[0] + pages[1]
    with central_db.session_factory(app)() as db:
        whole = find_by_name(db, "zhangsanfeng")
    assert _names(app, whole) == ["张三丰"]
    _sign_up(app, client, ["张三丰"], first_phone=13912340000)  # a new name waits for the next run
    assert len(_search(app, "zhangsanfeng")[0]) == 1 and _spell(app) == 1
    assert len(_search(app, "zhangsanfeng")[0]) == 2


def test_letters_without_a_vowel_find_names_by_their_initials_once_the_job_has_spelled_them(app, client):
    _sign_up(app, client, [*NAMES, "赵薇", "欧阳娜娜"])
    # A name in Latin letters has its initials when written; Han names wait for the job.
    assert _names(app, _search(app, "zw")[0]) == ["Zhang Wei"]
    assert _spell(app) == 9 and _spell(app) == 0
    zw = ["张伟", "Zhang Wei", "赵薇", "张伟明"]  # initials zw in record order, then zwm
    assert _names(app, _search(app, "zw")[0]) == zw
    assert _names(app, _search(app, " Z W ")[0]) == zw  # case and spaces fold as elsewhere
    assert _names(app, _search(app, "zwm")[0]) == ["张伟明"]
    assert _names(app, _search(app, "zxy")[0]) == ["張學友"]  # traditional characters spell the same
    assert _names(app, _search(app, "oynn")[0]) == ["欧阳娜娜"]  # a two-character surname
    assert _names(app, _search(app, "ls")[0]) == ["李四"]
    # zh, ch and sh start pinyin too: searched as pinyin, they find every zh... name, the initials' answer included.
    assert sorted(_names(app, _search(app, "zh")[0])) == sorted(
        ["张伟明", "张三丰", "章子怡", "张伟", "张", "張學友", "Zhang Wei", "赵薇"]
    )
    assert _pages(app, "zw", 3) == [zw[:3], zw[3:]]
    with central_db.session_factory(app)() as db:
        whole = find_by_name(db, "zsf")
    assert _names(app, whole) == ["张三丰"]

    create_user(app, "service", role="customer_service")
    console = app.test_client()
    assert login(console, "service").status_code == 302
    # A role that sees names masked finds a customer by the whole name as written, not by initials.
    assert 'id="results"' not in console.get("/console/customers?kind=name&q=oynn").get_data(as_text=True)
    page = console.get("/console/customers?kind=name&q=欧阳娜娜").get_data(as_text=True)
    rows = page.split('id="results"', 1)[1].split("</table>", 1)[0].split("<tr><td><a")[1:]
    assert len(rows) == 1 and "<td>欧" in rows[0], rows  # one customer, her name masked for the role
    assert "zw" not in page.split('name="q"', 1)[1].split(">", 1)[0]  # the field's hint says characters
    create_user(app, "admin", role="admin")
    admin = app.test_client()
    assert login(admin, "admin").status_code == 302
    page = admin.get("/console/customers?kind=name&q=oynn").get_data(as_text=True)
    assert "<td>欧阳娜娜</td>" in page and "zw" in page.split('name="q"', 1)[1].split(">", 1)[0]


def test_a_surname_is_spelled_as_a_surname(app, client):
    # 曾 reads ceng in 曾经 but zeng as a surname; 单 shan, 区 ou; the compound surname 单于 keeps chanyu.
    _sign_up(app, client, ["曾刚", "单雄信", "区华", "单于明", "Zeng Gang"])
    _spell(app)
    assert _names(app, _search(app, "zeng")[0]) == ["曾刚", "Zeng Gang"]
    assert _names(app, _search(app, "zg")[0]) == ["曾刚", "Zeng Gang"]
    assert _names(app, _search(app, "shanxiong")[0]) == ["单雄信"]
    assert _names(app, _search(app, "ouhua")[0]) == ["区华"]
    assert _names(app, _search(app, "chanyu")[0]) == ["单于明"]
    assert _search(app, "ceng") == ([], None)
