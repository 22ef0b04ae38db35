"""The identity API and commands: look-up, ledger, review decisions, split, removal, health; audited, masked."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import db as central_db
from central.identity.models import Identifier, LedgerEntry
from central.identity.resolve import resolve
from central.models import AuditLog
from tests.central.cli_runner import Cli, InProcessCli, write_config
from tests.central.identity_support import facts
from tests.central.support import START, table_rows

JSON = {"Content-Type": "application/json"}


def feed(app, *sets, **kwargs):
    with central_db.session_factory(app)() as db:
        result = resolve(db, facts(db, *sets, **kwargs), START, registry=app.config["IDENTITY_REGISTRY"])
        db.commit()
    return result


@pytest.mark.parametrize(
    "path",
    ["/api/v1/identity/lookup?type=phone&value=13812345678", "/api/v1/identity/review", "/api/v1/identity/health"],
)
def test_login_is_required(app, client, path):
    assert client.get(path).status_code == 401
    assert table_rows(app, AuditLog) == []


def test_lookup_by_any_identifier_is_masked_and_audited(app, user_client):
    feed(app, {"member_id": "M100", "phone": "13812345678", "email": "zhang@example.com"}, attributes={"name": "张三"})
    body = user_client.get("/api/v1/identity/lookup?type=email&value=Zhang@Example.com").get_json()
    customer = body["customer"]
    assert {i["type"]: i["value"] for i in customer["identifiers"]} == {
        "email": "z***@example.com",
        "member_id": "****",
        "phone": "138****5678",
    }
    assert customer["golden"]["name"] == {"value": "张*", "source": "dev_test"}
    audit = table_rows(app, AuditLog)[-1]
    assert (audit.actor, audit.action) == ("alice", "identity.lookup")
    assert "zhang" not in str(audit.subject)
    assert user_client.get("/api/v1/identity/lookup?type=phone&value=13912340077").status_code == 404
    assert user_client.get("/api/v1/identity/lookup?type=phone&value=12").status_code == 400


def test_a_masked_name_does_not_give_its_length_away(app, user_client):
    """The identity API showed 欧阳娜娜 as 欧***: one star per hidden character, unlike every other page (欧*)."""
    feed(app, {"member_id": "M101", "phone": "13812345679"}, attributes={"name": "欧阳娜娜"})
    body = user_client.get("/api/v1/identity/lookup?type=phone&value=13812345679").get_json()
    assert body["customer"]["golden"]["name"]["value"] == "欧*"


def test_ledger_review_accept_and_split(app, user_client):
    feed(app, {"member_card": "CARD1111", "phone": "13912345699"})
    feed(app, {"member_card": "CARD2222", "email": "b@example.com"})
    feed(app, {"phone": "13912345699", "email": "b@example.com"})
    with central_db.session_factory(app)() as db:
        merge = db.scalar(select(LedgerEntry).where(LedgerEntry.action == "merge"))
        survivor = merge.customer_id
    ledger = user_client.get(f"/api/v1/identity/customers/{survivor}/ledger").get_json()["ledger"]
    assert [r["action"] for r in ledger].count("merge") == 1
    done = user_client.post(f"/api/v1/identity/customers/{survivor}/split", json={"ledger_id": merge.id})
    assert done.status_code == 200, done.get_json()
    assert len(done.get_json()["customers"]) == 2
    again = user_client.post(f"/api/v1/identity/customers/{survivor}/split", json={"ledger_id": 10**6})
    assert again.status_code == 409
    not_json = user_client.post(f"/api/v1/identity/customers/{survivor}/split", data="ledger_id=1")
    assert not_json.status_code == 415
    health = user_client.get("/api/v1/identity/health").get_json()
    assert health["customers"] == 2 and health["merged_customers"] == 0
    assert health["identifiers_per_customer"]["2"] == 2


def test_review_accept_merges_and_reject_keeps_apart(app, user_client):
    feed(app, {"member_card": "CARD0001", "member_id": "A1"})
    feed(app, *({"member_id": "A1", "member_card": f"CARD000{n}"} for n in (2, 3, 4)))
    items = user_client.get("/api/v1/identity/review").get_json()["items"]
    assert [i["reason"] for i in items] == ["limit_exceeded"]
    assert items[0]["evidence"]["value"] == "****0004"
    accepted = user_client.post(f"/api/v1/identity/review/{items[0]['id']}/accept", json={})
    assert accepted.status_code == 200, accepted.get_json()
    again = user_client.post(f"/api/v1/identity/review/{items[0]['id']}/reject", json={})
    assert again.status_code == 409
    feed(app, {"member_id": "B1", "phone": "13912340001"})
    feed(app, {"member_id": "B2", "member_card": "CARD0009"})
    feed(app, {"member_card": "CARD0009", "phone": "13912340001"})
    (item,) = user_client.get("/api/v1/identity/review").get_json()["items"]
    assert item["reason"] == "unique_conflict"
    refused = user_client.post(f"/api/v1/identity/review/{item['id']}/accept", json={})
    assert refused.status_code == 409 and "member_id" in refused.get_json()["error"]["message"]
    decided = user_client.post(f"/api/v1/identity/review/{item['id']}/reject", json={})
    assert decided.status_code == 200 and decided.get_json()["also"] == []  # no other item on this pair
    assert user_client.get("/api/v1/identity/review").get_json()["total"] == 0


def test_accepting_a_limit_item_never_merges_past_a_unique_type(app, user_client):
    """A reviewer may override a limit, not a unique type that clashes by the time the item is decided."""
    feed(app, *({"member_card": f"CARD000{n}", "phone": "13912340002"} for n in (1, 2, 3)))
    feed(app, {"member_card": "CARD0004", "email": "b@example.com"})
    feed(app, {"member_card": "CARD0004", "phone": "13912340002"})
    (item,) = user_client.get("/api/v1/identity/review").get_json()["items"]
    assert (item["reason"], item["blocked"]) == ("limit_exceeded", None)
    # While the item waits, each customer signs up with a member id of their own.
    feed(app, {"member_id": "A1", "phone": "13912340002"})
    feed(app, {"member_id": "B1", "email": "b@example.com"})
    (item,) = user_client.get("/api/v1/identity/review").get_json()["items"]
    assert item["blocked"] == "unique_conflict:member_id"
    refused = user_client.post(f"/api/v1/identity/review/{item['id']}/accept", json={})
    assert refused.status_code == 409 and "unique_conflict:member_id" in refused.get_json()["error"]["message"]
    with central_db.session_factory(app)() as db:
        owners = db.execute(select(Identifier.customer_id).where(Identifier.kind == "member_id")).scalars().all()
    assert len(set(owners)) == 2


def test_a_weak_match_past_a_limit_is_marked_blocked_and_refused(app, user_client):
    twin = {"name": "王芳", "birthday": "1990-03-05"}
    feed(app, *({"member_card": f"CARD000{n}", "phone": "13912340003"} for n in (1, 2, 3)), attributes=twin)
    feed(app, {"member_card": "CARD0004", "email": "b@example.com"}, attributes=twin)
    (item,) = user_client.get("/api/v1/identity/review").get_json()["items"]
    assert (item["reason"], item["blocked"]) == ("weak_match", "limit_exceeded:member_card")
    refused = user_client.post(f"/api/v1/identity/review/{item['id']}/accept", json={})
    assert refused.status_code == 409 and "limit_exceeded:member_card" in refused.get_json()["error"]["message"]


def test_remove_identifier_through_the_api(app, user_client):
    result = feed(app, {"member_id": "M1", "phone": "13912345601"})
    done = user_client.post("/api/v1/identity/identifiers/remove", json={"type": "phone", "value": "139 1234 5601"})
    assert done.get_json() == {"removed": True, "customer_id": result.customer_ids[0]}
    later = feed(app, {"phone": "13912345601"})
    assert later.customer_ids == [None]


@pytest.fixture
def cli(backend, tmp_path) -> InProcessCli:
    return InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))


def test_commands_split_remove_review_and_rebuild(app, cli):
    feed(app, {"member_card": "CARD1111", "phone": "13912345699"})
    feed(app, {"member_card": "CARD2222", "email": "b@example.com"})
    feed(app, {"phone": "13912345699", "email": "b@example.com"})
    with central_db.session_factory(app)() as db:
        merge = db.scalar(select(LedgerEntry).where(LedgerEntry.action == "merge"))
    done = cli.run("split", "--customer", str(merge.customer_id), "--ledger-row", str(merge.id))
    assert done.returncode == 0, done.stderr
    assert "split into customers" in done.stdout
    wrong = cli.run("split", "--customer", "999", "--ledger-row", "1")
    said, refused = wrong.stderr.strip().splitlines()
    assert wrong.returncode == 1 and said.startswith("central-server: database ")
    assert refused == "central-server: no customer 999"
    removed = cli.run("remove-identifier", "--type", "phone", "--value", "13912345699")
    assert removed.returncode == 0, removed.stderr
    assert "139****5699 removed" in removed.stdout and "13912345699" not in removed.stdout
    listed = cli.run("review", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("0 open review item(s)")
    rebuilt = cli.run("rebuild-identity")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "identifier mismatches 0, customer mismatches 0" in rebuilt.stdout


def test_a_bad_registry_file_stops_start_up_with_its_line(backend, tmp_path):
    registry = tmp_path / "registry.toml"
    registry.write_text("[types.phone]\nlimit = 0\n", encoding="utf-8")
    config = write_config(tmp_path / "central.toml", tmp_path / "data", backend.url)
    config.write_text(config.read_text() + f'\n[identity]\nregistry_file = "{registry}"\n', encoding="utf-8")
    done = Cli(config).run("check-config")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"central-server: config error in {registry}:2: types.phone.limit: must be an integer of at least 1"
    )


def test_sessions_see_the_registry(app):
    with Session(central_db.engine_for(app)) as db:
        assert db.scalar(select(LedgerEntry.id)) is None
    assert "phone" in app.config["IDENTITY_REGISTRY"].types


def test_a_removed_phone_resent_by_an_agent_offline_for_a_week_is_not_reattached(app, client, agent, user_client):
    from datetime import timedelta

    from central.customers.models import Receipt

    agent.send(client, [agent.receipt("R1", phone="13912345602", card="VIP7777")])
    done = user_client.post("/api/v1/identity/identifiers/remove", json={"type": "phone", "value": "13912345602"})
    customer = done.get_json()["customer_id"]
    # The store was offline: its receipts from a week ago arrive now, naming the removed phone.
    week_ago = START - timedelta(days=7)
    late = [
        agent.receipt("R0", phone="13912345602", card="VIP7777", observed_at=week_ago),
        agent.receipt("R00", phone="13912345602", observed_at=week_ago),
    ]
    assert len(agent.send(client, late)["accepted"]) == 2
    owners = {r.receipt_no: r.customer_id for r in table_rows(app, Receipt)}
    assert owners == {"R1": customer, "R0": customer, "R00": None}
    phone = user_client.get("/api/v1/identity/lookup?type=phone&value=13912345602")
    assert phone.status_code == 404
