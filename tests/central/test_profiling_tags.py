"""Tags that profile need profiling consent (PIPL); service tags do not.

The chain of test_customer_tags.py, with these consent histories instead of everyone agreeing:
Alice agreed; Bob never decided; Carol agreed, then withdrew; Dave withdrew, then agreed again;
Eve agreed herself but is 11 (a minor needs her guardian's grant).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from central.config_loader import load_config
from central.customers import tagging
from tests.central.customer_support import NOW, engine_at, profiling_consent, store
from tests.central.test_customer_tags import ALICE, BOB, CAROL, DAVE, EVE, _history, _tags

SERVICE = {"value.spend", "service.high_care"}
PROFILING = {"rfm.r", "rfm.f", "rfm.m", "value_tier", "frequency", "channel", "time_of_day", "weekend_shopper"}
PROFILING |= {"lifecycle", "value.clv"}


def _chain() -> list[dict[str, Any]]:
    events = [e for e in _history() if e["kind"] != "consent.given"]
    events += [
        profiling_consent("alice-yes", phone=ALICE),
        profiling_consent("carol-yes", phone=CAROL, at="2026-03-01T09:00:00+08:00"),
        profiling_consent("carol-no", phone=CAROL, granted=False, at="2026-10-01T09:00:00+08:00"),
        profiling_consent("dave-no", phone=DAVE, granted=False, at="2026-03-01T09:00:00+08:00"),
        profiling_consent("dave-yes", phone=DAVE, at="2026-10-01T09:00:00+08:00"),
        profiling_consent("eve-yes", phone=EVE),
        {
            "event_id": "eve-signup",
            "kind": "member.signup",
            "observed_at": "2025-01-10T10:00:00+08:00",
            "identifiers": {"phone": EVE},
            "birthday": "2015-05-05",
            "payload": {},
        },
    ]
    return events


def _recompute(engine, **settings: Any) -> tagging.Recomputed:
    config = load_config(None, environ={}, overrides=settings)
    with engine.begin() as conn:
        return tagging.recompute(conn, config, NOW)


def test_tags_that_profile_are_written_only_under_profiling_consent(backend):
    with engine_at(backend.url) as engine:
        store(engine, _chain())
        done = _recompute(engine)
        assert done.clv_problem is None
        tags = _tags(engine)
        assert set(tags[ALICE]) >= PROFILING and set(tags[DAVE]) >= PROFILING
        assert set(tags[BOB]) == SERVICE  # never decided: refused by default, the complaint still flagged
        assert set(tags[CAROL]) == {"value.spend"}
        assert set(tags[EVE]) == {"value.spend"}
        # Refused customers still count in the chain's quintiles: Alice ranks 4th of 4 active, as with consent.
        assert tags[ALICE]["rfm.r"] == "4" and tags[DAVE]["rfm.r"] == "2"
        assert done.tags["value_tier"] == 2 and done.tags["value.spend"] == 5

        # Another legal basis: customers who never decided are profiled, a withdrawal or a minor still refuses.
        _recompute(engine, **{"tags.profiling_without_decision": "allow"})
        tags = _tags(engine)
        assert set(tags[BOB]) >= PROFILING and tags[BOB]["value_tier"] == "dormant"
        assert set(tags[CAROL]) == {"value.spend"}
        assert set(tags[EVE]) == {"value.spend"}
        assert set(tags[ALICE]) >= PROFILING and set(tags[DAVE]) >= PROFILING


def _carol(engine) -> set[str]:
    return set(_tags(engine).get(CAROL, {}))


def test_a_withdrawal_drops_profiling_tags_in_its_own_transaction_and_at_every_recompute(backend):
    with engine_at(backend.url) as engine:
        store(engine, _history())  # everyone agreed on 1 January
        _recompute(engine)
        assert _carol(engine) >= PROFILING
        alice_before = _tags(engine)[ALICE]

        withdrawal = profiling_consent("carol-no", phone=CAROL, granted=False, at="2026-11-30T10:00:00+08:00")
        store(engine, [withdrawal])
        assert _carol(engine) == {"value.spend"}  # gone with the ingest transaction, before any recompute
        assert _tags(engine)[ALICE] == alice_before
        store(engine, [withdrawal])  # a duplicate delivery changes nothing
        _recompute(engine)
        assert _carol(engine) == {"value.spend"}

        # An older grant delivered late does not override the withdrawal; a newer one restores the tags.
        store(engine, [profiling_consent("carol-late", phone=CAROL, at="2026-11-01T09:00:00+08:00")])
        _recompute(engine)
        assert _carol(engine) == {"value.spend"}
        store(engine, [profiling_consent("carol-again", phone=CAROL, at="2026-11-30T11:00:00+08:00")])
        assert _carol(engine) == {"value.spend"}  # a grant adds nothing until the tags are computed
        _recompute(engine)
        assert _carol(engine) >= PROFILING
        with engine.connect() as conn:
            gate = conn.execute(text("SELECT COUNT(*) FROM customer_tags WHERE tag = 'value_tier'")).scalar()
        assert gate == 5
