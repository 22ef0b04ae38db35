"""`python -m bench [outbox|sync|memory|rebuild|all] [options]`: run benchmarks and print their figures."""

from __future__ import annotations

import argparse

from bench import identity_rebuild, memory, outbox, sync_drain


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("which", nargs="?", default="all", choices=["outbox", "sync", "memory", "rebuild", "all"])
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--events", type=int, default=0, help="override the event count")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.which in ("outbox", "all"):
        outbox.main(runs=args.runs, events=args.events or 100_000)
    if args.which in ("sync", "all"):
        sync_drain.main(runs=min(args.runs, 3), events=args.events or 200_000, backend=args.backend)
    if args.which in ("memory", "all"):
        memory.main()
    if args.which in ("rebuild", "all"):
        identity_rebuild.main(links=args.events or 1_000_000, backend=args.backend)


if __name__ == "__main__":
    main()
