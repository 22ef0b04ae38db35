"""Legacy member import: a CSV export of an old member system becomes events, customers and a report.

Every row becomes a ``member.signup`` event of the import's source with the id
``import:<digest>:<row>``, where the digest covers the file's bytes and the mapping. Rows go
through the online sources' path (:mod:`central.sources.events`) in chunks, one transaction each,
together with their :class:`~central.sources.models.ImportRow` (the row's outcome). So a kill
loses at most the chunk in flight, a rerun starts after the last committed row, and running a
finished import again changes nothing and prints the same report.

Per row: ``new`` (a customer was created for it), ``merged`` (it joined an existing customer or
an earlier row), ``suggestion`` (linked, and weak evidence went to the review queue), ``conflict``
(not linked: its evidence went to review, or its phone is shared by rows of other names),
``rejected`` (unusable: no identifier, a malformed row), ``duplicate`` (its event was already
stored by another run). The file is read by :mod:`central.sources.import_file`, whose first pass
runs the phone + name rule over the whole file: a phone given for rows of different names links
none of them.

A run with rows to import records itself in ``import_runs`` (:mod:`central.sources.import_runs`):
rows done, written with each chunk, and how it ended; the console shows it as the import's progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central import bulk
from central.collector import collector_paused
from central.customers import consent
from central.db import catch_up_statistics
from central.identity.models import Customer, ReviewItem
from central.identity.registry import Registry
from central.identity.resolve import IdentityFact, Resolution, resolve
from central.ingest.batches import MAX_ATTEMPTS, _is_retryable
from central.models import table
from central.sources import import_consent, import_runs
from central.sources.events import SourceRow, device_for, identity_fact, insert_events
from central.sources.import_consent import ImportedRow
from central.sources.import_file import ImportOptions, Plan, prepared_rows
from central.sources.import_mapping import PreparedRow, event_of
from central.sources.models import ImportRow, MemberImport
from shared import wire

_rows_table = table(ImportRow)
_review = table(ReviewItem)
_ROW_COLUMNS = ("import_id", "row", "event_pk", "external_id", "customer_id", "outcome", "reason")
Resolver = Callable[..., Resolution]


@dataclass
class RunStats:
    """What this run did (the report's totals come from the database instead)."""

    skipped: int = 0
    processed: int = 0
    created: int = 0
    merged: int = 0
    reviewed: int = 0
    consents: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    # Match blocks too common to be evidence (block -> most customers seen in it): not paired.
    common_blocks: dict[str, int] = field(default_factory=dict)

    def note_common(self, blocks: dict[str, int]) -> None:
        """Remember blocks found too common for weak-match suggestions, at their largest size."""
        for block, size in blocks.items():
            self.common_blocks[block] = max(size, self.common_blocks.get(block, 0))


def open_import(db: Session, plan: Plan, options: ImportOptions, now: datetime) -> tuple[int, int]:
    """The import's id (created on the first run) and the last row already committed (0 if none)."""
    row = db.scalars(select(MemberImport).where(MemberImport.digest == plan.digest)).first()
    if row is None:
        row = MemberImport(
            digest=plan.digest,
            source=options.source,
            filename=plan.path.name[:255],
            operator=options.operator[:64],
            created_at=now,
        )
        db.add(row)
        db.flush()
    done = db.scalar(select(func.max(ImportRow.row)).where(ImportRow.import_id == row.id)) or 0
    return row.id, done


@dataclass
class _Item:
    prepared: PreparedRow
    source_row: SourceRow | None = None
    pk: int | None = None
    fact: IdentityFact | None = None
    customer_id: int | None = None
    reviewed: bool = False


def import_chunk(
    db: Session,
    import_id: int,
    plan: Plan,
    chunk: Sequence[PreparedRow],
    now: datetime,
    *,
    registry: Registry,
    options: ImportOptions,
    stats: RunStats,
    resolver: Resolver = resolve,
) -> None:
    """Store, resolve and record one chunk of rows in the caller's transaction."""
    items = [_Item(p) for p in chunk]
    observed_at = wire.parse_time(plan.observed_at).astimezone(UTC)
    for item in items:
        if item.prepared.rejected:
            continue
        event = event_of(item.prepared, plan.prefix + str(item.prepared.row), plan.observed_at)
        if isinstance(event, str):
            item.prepared.rejected = event
            continue
        item.source_row = SourceRow(event, observed_at)
    device_id = device_for(options.source)
    storable = [i for i in items if i.source_row is not None]
    pks = insert_events(db, device_id, [i.source_row for i in storable if i.source_row], now)
    for item in storable:
        assert item.source_row is not None
        item.pk = pks.get(item.source_row.event.event_id)
        if item.pk is not None and item.source_row.event.identifiers:
            item.fact = identity_fact(device_id, item.source_row, item.pk, operator=options.operator)
    linked = [i for i in items if i.fact is not None]
    newest_before = db.scalar(select(func.max(Customer.id))) or 0
    _resolve_items(db, linked, now, registry, options, stats, resolver)
    answered = [
        ImportedRow(i.fact.event_id, i.pk, i.customer_id, i.prepared.consents, i.prepared.consent_at)
        for i in linked
        if i.prepared.consents and i.customer_id is not None and i.fact is not None and i.pk is not None
    ]
    if answered:
        stated = import_consent.decisions(answered, observed_at, origin=device_id, notice=options.consent_notice)
        stats.consents += consent.record(db.connection(), stated, now)
    rows = _outcomes(items, newest_before, stats, _review_reasons(db, [i.pk for i in linked if i.reviewed]))
    bulk.insert(
        db.connection(),
        _rows_table,
        _ROW_COLUMNS,
        [(import_id, *r) for r in rows],
        skip_conflicts_on=("import_id", "row"),
    )


def _resolve_items(
    db: Session,
    linked: list[_Item],
    now: datetime,
    registry: Registry,
    options: ImportOptions,
    stats: RunStats,
    resolver: Resolver,
) -> None:
    """Resolve the chunk at once; if anything went to review, again fact by fact, to know which rows did."""
    if not linked:
        return
    facts = [i.fact for i in linked]
    savepoint = db.begin_nested()
    result = resolver(db, facts, now, registry=registry, allow_weak_merge=options.merge_suggestions)
    if result.reviewed and len(linked) > 1:
        savepoint.rollback()
        for item in linked:
            one = resolver(db, [item.fact], now, registry=registry, allow_weak_merge=options.merge_suggestions)
            item.customer_id, item.reviewed = one.customer_ids[0], one.reviewed > 0
            stats.created, stats.merged, stats.reviewed = (
                stats.created + one.created,
                stats.merged + one.merged,
                stats.reviewed + one.reviewed,
            )
            stats.note_common(one.common_blocks)
        return
    savepoint.commit()
    for item, customer_id in zip(linked, result.customer_ids, strict=True):
        item.customer_id, item.reviewed = customer_id, bool(result.reviewed)
    stats.created += result.created
    stats.merged += result.merged
    stats.reviewed += result.reviewed
    stats.note_common(result.common_blocks)


_Outcome = tuple[int, int | None, str | None, int | None, str, str]


# What a row's report says went to the review queue, by the review item's reason.
_REVIEWED = {
    "weak_match": "weak match sent to review",
    "unique_conflict": "an identifier another customer holds sent to review",
    "suspicious": "an identifier shared by too many customers sent to review",
}


def _review_reasons(db: Session, pks: list[int | None]) -> dict[int, str]:
    """The review items' reasons for these events (one per event: the first opened)."""
    wanted = [pk for pk in pks if pk is not None]
    if not wanted:
        return {}
    rows = db.execute(
        select(_review.c.event_pk, _review.c.reason).where(_review.c.event_pk.in_(wanted)).order_by(_review.c.id)
    )
    found: dict[int, str] = {}
    for pk, reason in rows:
        found.setdefault(pk, reason)
    return found


def _outcomes(items: list[_Item], newest_before: int, stats: RunStats, reviews: dict[int, str]) -> list[_Outcome]:
    """Each row's (row, event_pk, external_id, customer_id, outcome, reason)."""
    first_row: dict[int, int] = {}
    out: list[_Outcome] = []
    for item in items:
        p = item.prepared
        notes = list(p.warnings)
        if p.rejected:
            outcome, reason = "rejected", p.rejected
        elif item.pk is None:
            outcome, reason = "duplicate", "already imported"
        elif item.customer_id is None:
            outcome = "conflict"
            if item.fact is None:
                reason = "phone_shared_by_other_names"
            elif item.reviewed:
                reason = "sent to review, not linked"
            else:
                reason = "nothing linkable"
            notes = [n for n in notes if n != "phone_shared_by_other_names"]
        else:
            earlier = first_row.setdefault(item.customer_id, p.row)
            if item.customer_id > newest_before and earlier == p.row:
                outcome, reason = "new", "new customer"
            elif earlier != p.row:
                outcome, reason = "merged", f"same person as row {earlier}"
            else:
                outcome, reason = "merged", "matched an existing customer"
            if item.reviewed:
                what = _REVIEWED.get(reviews.get(item.pk or 0, ""), "sent to review")
                outcome, reason = "suggestion", f"{reason}; {what}"
        if notes:
            reason = f"{reason} ({', '.join(notes)})"
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        out.append((p.row, item.pk, p.external_id, item.customer_id, outcome, reason))
    return out


def run_import(
    db: Session,
    plan: Plan,
    options: ImportOptions,
    *,
    registry: Registry,
    clock: Callable[[], datetime],
    today: date,
    on_rows: Callable[[int], None] = lambda done: None,
    resolver: Resolver = resolve,
) -> tuple[int, RunStats]:
    """Import the planned file chunk by chunk (committed unless dry-run); return the import id and stats."""
    stats = RunStats()
    import_id, done = open_import(db, plan, options, clock())
    run_id = None
    if not options.dry_run:
        if done < plan.rows:
            run_id = import_runs.start_run(
                db, import_id, total=plan.rows, skipped=done, operator=options.operator, now=clock()
            )
        db.commit()
    chunk: list[PreparedRow] = []

    def flush() -> None:
        if not chunk:
            return
        with collector_paused():
            _flush()

    def _flush() -> None:
        if options.dry_run:
            import_chunk(
                db, import_id, plan, chunk, clock(), registry=registry, options=options, stats=stats, resolver=resolver
            )
        else:
            _commit_chunk(db, import_id, plan, chunk, clock, registry, options, stats, resolver, run_id)
            if catch_up_statistics(db.connection()):
                db.commit()
        stats.processed += len(chunk)
        on_rows(chunk[-1].row)
        chunk.clear()

    stats.skipped = min(done, plan.rows)
    try:
        for prepared in prepared_rows(plan, registry, options, today, after=done) if done < plan.rows else ():
            chunk.append(prepared)
            if len(chunk) >= options.chunk_size:
                flush()
        flush()
    except Exception as exc:
        if run_id is not None:  # the run's row says how it ended; the chunks committed stay
            _record_failure(db, run_id, clock, exc)
        raise
    on_rows(plan.rows)
    imported = db.get(MemberImport, import_id)
    if imported is not None and imported.completed_at is None:
        imported.completed_at, imported.rows = clock(), plan.rows
    if run_id is not None:
        import_runs.finish(db, run_id, clock())
    if not options.dry_run:
        db.commit()
    return import_id, stats


def _record_failure(db: Session, run_id: int, clock: Callable[[], datetime], exc: Exception) -> None:
    db.rollback()
    try:
        import_runs.finish(db, run_id, clock(), error=f"{type(exc).__name__}: {exc}"[:500])
        db.commit()
    except SQLAlchemyError:  # the database itself failed: the run stays "running" until the next run
        db.rollback()


def _commit_chunk(
    db: Session,
    import_id: int,
    plan: Plan,
    chunk: list[PreparedRow],
    clock: Callable[[], datetime],
    registry: Registry,
    options: ImportOptions,
    stats: RunStats,
    resolver: Resolver,
    run_id: int | None = None,
) -> None:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        attempt_stats = RunStats()
        try:
            import_chunk(
                db,
                import_id,
                plan,
                chunk,
                clock(),
                registry=registry,
                options=options,
                stats=attempt_stats,
                resolver=resolver,
            )
            if run_id is not None:
                import_runs.progress(db, run_id, chunk[-1].row, clock())
            db.commit()
        except Exception as exc:  # _is_retryable decides; anything else is raised again
            db.rollback()
            if not _is_retryable(exc) or attempt == MAX_ATTEMPTS:
                raise
            continue
        stats.created += attempt_stats.created
        stats.merged += attempt_stats.merged
        stats.reviewed += attempt_stats.reviewed
        stats.consents += attempt_stats.consents
        stats.note_common(attempt_stats.common_blocks)
        for outcome, count in attempt_stats.outcomes.items():
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + count
        return
