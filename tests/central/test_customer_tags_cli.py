"""Through the agents' batches: statistics on arrival, load-catalog, recompute-tags, export-tags and the API."""

from __future__ import annotations

import csv
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import select

from central import db as central_db
from central.audit import cli_actor
from central.cli import main
from central.customers.models import Product
from central.models import AuditLog
from tests.central.cli_runner import write_config
from tests.central.support import START, table_rows


def read(path):
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


def _sale(agent, number, day, sku):
    payload = {
        "receipt_no": f"R{number}",
        "total": "25.50",
        "member": {"phone": "13957204816"},
        "items": [{"sku": sku, "name": "item", "qty": 1}],
    }
    return agent.event("pos.receipt", payload, observed_at=START - timedelta(days=day))


def test_statistics_tags_and_export(app, client, agent, user_client, config_path, tmp_path, capsys):
    first = _sale(agent, 1, 10, "F900")
    agent.send(client, [first, _sale(agent, 2, 5, "F900"), _sale(agent, 3, 1, "NOPE")])
    agent.send(client, [first])  # a duplicate delivery adds nothing
    listed = user_client.get("/api/v1/customers").get_json()["customers"]
    customer = listed[0]["id"]
    body = user_client.get(f"/api/v1/customers/{customer}/tags").get_json()
    stats = body["statistics"]
    assert (stats["purchases"], stats["spent"]) == (3, "76.50")
    assert stats["windows"]["30d"] == {"purchases": 3, "spent": "76.50"}
    assert stats["channels"]["store"] == {"purchases": 3, "spent": "76.50"}
    assert stats["categories"] == [] and body["tags"] == []
    # The member agrees to profiling at the service desk: tags that profile need it.
    grant = {"purpose": "profiling", "granted": True, "notice_version": "2026-01"}
    granted = user_client.post(f"/api/v1/customers/{customer}/consents", json=grant)
    assert granted.status_code == 201, granted.get_json()

    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "sku,gtin,name,category,brand\nF900,6901234567892,Formula,Baby/Formula,Feihe\nBAD,12,Broken,Baby,\n",
        encoding="utf-8",
    )
    assert main(["load-catalog", str(catalogue), "--config", config_path]) == 0
    out = capsys.readouterr().out
    assert "2 rows, 1 products loaded, 1 refused" in out
    assert "line 3: gtin must be 8 to 14 digits" in out
    assert "unknown SKUs in sales: 1 (1 sale lines); 1 became known with this load" in out

    assert main(["recompute-tags", "--statistics", "--config", config_path]) == 0
    assert "recomputed all customers' statistics" in capsys.readouterr().out
    body = user_client.get(f"/api/v1/customers/{customer}/tags").get_json()
    assert body["statistics"]["categories"][0]["category"] == "Baby > Formula"
    tags = {t["tag"]: t for t in body["tags"]}
    assert tags["value.spend"]["value"] == "76.50"
    assert tags["value.spend"]["why"] == {"purchases": 3, "spent": 76.5}
    assert tags["top_category.1"]["value"] == "Baby > Formula"
    assert tags["value_tier"]["version"].startswith("2:")

    out_dir = tmp_path / "export"
    assert main(["export-tags", "--out", str(out_dir), "--config", config_path]) == 0
    tag_rows = read(out_dir / "tags.csv")
    assert tag_rows[0] == ["customer_id", "tag", "value", "definition_version", "computed_at"]
    assert [str(customer), "value.spend", "76.50"] == tag_rows[[r[1] for r in tag_rows].index("value.spend")][:3]
    assert len(tag_rows) - 1 == len(body["tags"])
    stat_rows = read(out_dir / "statistics.csv")
    header, row = stat_rows[0], stat_rows[1]
    assert len(stat_rows) == 2
    assert dict(zip(header, row, strict=True))["spent"] == "76.50"
    assert dict(zip(header, row, strict=True))["store_purchases"] == "3"
    # Every customer's profile left the database: the audit log says who, where and how much.
    exported = table_rows(app, AuditLog)[-1]
    assert (exported.actor, exported.action, exported.subject) == (cli_actor(), "tags.export", str(out_dir))
    assert exported.detail == {"tags": len(tag_rows) - 1, "statistics": 1}

    # Withdrawn at the console: the profiling tags go with the request, the spend (a service tag) stays.
    withdrawn = user_client.post(
        f"/api/v1/customers/{customer}/consents", json={"purpose": "profiling", "granted": False}
    )
    assert withdrawn.status_code == 201, withdrawn.get_json()
    body = user_client.get(f"/api/v1/customers/{customer}/tags").get_json()
    assert [t["tag"] for t in body["tags"]] == ["value.spend"]


def test_the_export_is_owner_only_in_a_directory_others_may_read(app, client, agent, config_path, tmp_path):
    agent.send(client, [_sale(agent, 1, 10, "F900")])
    out_dir = tmp_path / "tags"
    out_dir.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        assert main(["export-tags", "--out", str(out_dir), "--config", config_path]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out_dir.iterdir()}
    assert modes == {"tags.csv": 0o600, "statistics.csv": 0o600}


def test_tags_of_a_merged_or_unknown_customer(user_client):
    assert user_client.get("/api/v1/customers/999/tags").get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # reading the file; no database behaviour
def test_a_catalogue_saved_by_excel_in_gbk_loads_and_an_undecodable_one_is_refused(app, config_path, tmp_path, capsys):
    catalogue = tmp_path / "商品目录.csv"
    catalogue.write_bytes("sku,name,category,brand\nF900,婴儿配方奶粉,母婴/奶粉,飞鹤\n".encode("gbk"))
    assert main(["load-catalog", str(catalogue), "--config", config_path]) == 0
    assert "1 rows, 1 products loaded, 0 refused" in capsys.readouterr().out
    with central_db.session_factory(app)() as db:
        assert db.execute(select(Product.name, Product.category, Product.brand)).one() == (
            "婴儿配方奶粉",
            "母婴 > 奶粉",
            "飞鹤",
        )
    catalogue.write_bytes(b"sku,name,category\nF1,\x81\x30\x81\xff,Baby\n")  # neither UTF-8 nor GB18030
    assert main(["load-catalog", str(catalogue), "--config", config_path]) == 2
    assert "cannot decode" in capsys.readouterr().err
    assert main(["load-catalog", str(catalogue), "--encoding", "latin-1", "--config", config_path]) == 0
    assert main(["load-catalog", str(catalogue), "--encoding", "klingon", "--config", config_path]) == 2
    assert "unknown encoding 'klingon'" in capsys.readouterr().err


def test_a_row_with_control_characters_is_refused_and_a_field_too_long_for_csv_stops_the_load(
    app, config_path, tmp_path, capsys
):
    """A supplier's export with a NUL in a name (which PostgreSQL cannot store) or a broken quote."""
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("sku,name,category\nF1,Milk\x00,Dairy\nF2,Bread,Bakery\x07\nF3,Eggs,Dairy\n", encoding="utf-8")
    assert main(["load-catalog", str(catalogue), "--config", config_path]) == 0
    out = capsys.readouterr().out
    assert "3 rows, 1 products loaded, 2 refused" in out
    assert "line 2: name contains control characters" in out and "line 3: category contains control characters" in out
    catalogue.write_text('sku,name,category\nF4,"Flour,Baking\n' + "x" * 200_000 + "\n", encoding="utf-8")
    assert main(["load-catalog", str(catalogue), "--config", config_path]) == 2
    assert "field larger than field limit (131072); the file is not CSV as exported" in capsys.readouterr().err
    with central_db.session_factory(app)() as db:
        assert db.scalars(select(Product.sku)).all() == ["F3"]
