"""`python -m bench [NAME|all] [options]`: run benchmarks and print their figures (names: see --help)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench import (
    auth_timing,
    backlog,
    clv,
    consent_triggers,
    console_pages,
    customer_tags,
    daily_sales,
    endurance,
    escpos,
    identity_ingest,
    identity_rebuild,
    identity_score,
    member_import,
    memory,
    outbox,
    panel,
    presence,
    presence_agent,
    promotion,
    segments,
    signing,
    sync_drain,
    trigger_kinds,
)

# name -> how to run it with the parsed options; "all" runs them in this order.
BENCHMARKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "outbox": lambda a: outbox.main(runs=a.runs, events=a.events or 100_000),
    "sync": lambda a: sync_drain.main(runs=min(a.runs, 3), events=a.events or 200_000, backend=a.backend),
    "memory": lambda a: memory.main(),
    "backlog": lambda a: backlog.main(),
    "presence": lambda a: presence.main(runs=a.runs, sightings=a.events or 300_000),
    "presence_agent": lambda a: presence_agent.main(runs=min(a.runs, 3)),
    "clv": lambda a: clv.main(runs=a.runs),
    "rebuild": lambda a: identity_rebuild.main(links=a.events or 1_000_000, backend=a.backend),
    "ingest": lambda a: identity_ingest.main(events=a.events or 50_000, backend=a.backend),
    "ingest-size": lambda a: identity_ingest.size_effect(
        events=a.events or 300_000, backend=a.backend, runs=min(a.runs, 3)
    ),
    "import": lambda a: member_import.main(rows=a.rows, backend=a.backend),
    "score": lambda a: identity_score.main(customers=a.customers),
    "auth": lambda a: auth_timing.main(tries=a.events or 2000),
    "endurance": lambda a: endurance.main(runs=min(a.runs, 3), events=a.events or 500_000, cards=a.cards),
    "signing": lambda a: signing.main(runs=a.runs, events=a.events or 50_000),
    "escpos": lambda a: escpos.main(runs=a.runs, receipts=a.events or 2000),
    "panel": lambda a: panel.main(scans=a.events or 1000),
    "consent": lambda a: consent_triggers.main(customers=a.events or 200_000, backend=a.backend, runs=a.runs),
    "stats": lambda a: customer_tags.stats(
        events=a.events or 100_000, customers=a.customers, runs=min(a.runs, 3), backend=a.backend
    ),
    "tags": lambda a: customer_tags.recompute(customers=a.customers, backend=a.backend),
    "promotion": lambda a: promotion.main(members=a.members, backend=a.backend),
    "trigger-kinds": lambda a: trigger_kinds.main(
        customers=a.events or 200_000, backend=a.backend, runs=min(a.runs, 3)
    ),
    "segments": lambda a: segments.main(customers=a.customers, backend=a.backend, runs=min(a.runs, 3)),
    "daily-sales": lambda a: daily_sales.main(
        receipts=a.events or 1_000_000, codes=a.codes, backend=a.backend, runs=a.runs
    ),
    "pages": lambda a: console_pages.each_backend(
        customers=a.customers, events=a.events or 10 * a.customers, backend=a.backend, requests=10 * a.runs
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("which", nargs="?", default="all", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--events", type=int, default=0, help="override the event count")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000, help="legacy member rows for the import benchmark")
    parser.add_argument("--customers", type=int, default=20_000, help="people in the chain the scorer generates")
    parser.add_argument("--codes", type=int, default=1_000_000, help="coupon codes for the daily-sales benchmark")
    parser.add_argument("--members", type=int, default=100_000, help="members for the promotion stress test")
    parser.add_argument(
        "--cards",
        choices=["random", "members"],
        default="random",
        help="endurance: member cards drawn at random beside phones (the over-merge guard's worst case), or one card"
        " per member as in an honest store",
    )
    args = parser.parse_args()
    for name, run in BENCHMARKS.items():
        if args.which in (name, "all"):
            run(args)


if __name__ == "__main__":
    main()
