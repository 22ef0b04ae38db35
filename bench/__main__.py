"""`python -m bench [outbox|sync|memory|ingest|import|score|all] [options]`: run benchmarks, print figures."""

from __future__ import annotations

import argparse

from bench import identity_ingest, identity_score, member_import, memory, outbox, sync_drain


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument(
        "which", nargs="?", default="all", choices=["outbox", "sync", "memory", "ingest", "import", "score", "all"]
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--events", type=int, default=0, help="override the event count")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000, help="legacy member rows for the import benchmark")
    parser.add_argument("--customers", type=int, default=20_000, help="people in the chain the scorer generates")
    args = parser.parse_args()
    if args.which in ("outbox", "all"):
        outbox.main(runs=args.runs, events=args.events or 100_000)
    if args.which in ("sync", "all"):
        sync_drain.main(runs=min(args.runs, 3), events=args.events or 200_000, backend=args.backend)
    if args.which in ("memory", "all"):
        memory.main()
    if args.which in ("ingest", "all"):
        identity_ingest.main(events=args.events or 50_000, backend=args.backend)
    if args.which in ("import", "all"):
        member_import.main(rows=args.rows, backend=args.backend)
    if args.which in ("score", "all"):
        identity_score.main(customers=args.customers)


if __name__ == "__main__":
    main()
