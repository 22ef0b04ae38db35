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
stored by another run). The phone + name rule runs over the whole file first: a phone given for
rows of different names links none of them.

A run with rows to import records itself in ``import_runs`` (:mod:`central.sources.import_runs`):
rows done, written with each chunk, and how it ended; the console shows it as the import's progress.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central import bulk
from central.collector import collector_paused
from central.customers import consent
from central.db import catch_up_statistics
from central.identity.models import Customer
from central.identity.registry import Registry
from central.identity.resolve import IdentityFact, Resolution, resolve
from central.ingest.batches import MAX_ATTEMPTS, _is_retryable
from central.models import table
from central.sources import import_consent, import_runs
from central.sources.events import SourceRow, device_for, identity_fact, insert_events
from central.sources.import_consent import ImportedRow
from central.sources.import_mapping import (
    Mapping,
    PhoneNames,
    PreparedRow,
    build_mapping,
    event_of,
    phone_and_name,
    prepare_row,
)
from central.sources.legacy_formats import detect_encoding, sniff_delimiter
from central.sources.models import ImportRow, MemberImport
from shared import wire

# Rows a transaction. At 100,000 rows, 5,000 a transaction used 10 to 15 % less CPU per row than
# 1,000 (fewer commits, each writing the index pages its rows touched; docs/benchmarks.md,
# 2026-12-01). A kill loses at most one chunk; a chunk that sends anything to review is resolved
# again row by row.
DEFAULT_CHUNK = 5000
OPERATOR_CLI = "cli"
_rows_table = table(ImportRow)
_ROW_COLUMNS = ("import_id", "row", "event_pk", "external_id", "customer_id", "outcome", "reason")
Resolver = Callable[..., Resolution]


@dataclass(frozen=True)
class ImportOptions:
    """How to read the file and what the import may do."""

    maps: tuple[str, ...] = ()
    source: str = "import"
    encoding: str | None = None
    delimiter: str | None = None
    date_order: str | None = None
    merge_suggestions: float | None = None
    chunk_size: int = DEFAULT_CHUNK
    dry_run: bool = False
    operator: str = OPERATOR_CLI
    consent_notice: str = ""  # the privacy notice the file's consent answers were given under


@dataclass
class Plan:
    """What the first pass found: encoding, dialect, mapping, digest, row count, shared phones."""

    path: Path
    encoding: str
    delimiter: str
    mapping: Mapping
    digest: str
    rows: int
    phones: PhoneNames
    observed_at: str

    @property
    def prefix(self) -> str:
        return f"import:{self.digest[:16]}:"


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


def _records(path: Path, encoding: str, delimiter: str) -> Iterator[list[str]]:
    with path.open("r", encoding=encoding, newline="") as stream:
        reader = csv.reader(stream, delimiter=delimiter)
        try:
            yield from reader
        except csv.Error as exc:
            raise ValueError(f"{path}, line {reader.line_num}: {exc}; the file is not CSV as exported") from None


def plan_import(path: Path, options: ImportOptions, registry: Registry) -> Plan:
    """First pass: read the header, build the mapping, hash file and mapping, apply the phone + name rule."""
    encoding = options.encoding or detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as stream:
        first_line = stream.readline()
    delimiter = options.delimiter or sniff_delimiter(first_line)
    records = _records(path, encoding, delimiter)
    header = next(records, None)
    if header is None:
        raise ValueError(f"{path} is empty: expected a header line, then one member a line")
    mapping = build_mapping(header, options.maps, str(path))
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        while block := raw.read(1 << 20):
            digest.update(block)
    settings = {
        "mapping": mapping.canonical(),
        "date_order": options.date_order,
        "source": options.source,
        "encoding": encoding,
        "delimiter": delimiter,
        "merge_suggestions": options.merge_suggestions,
    }
    if options.consent_notice:  # only then: the digests of imports before consent columns stay as they were
        settings["consent_notice"] = options.consent_notice
    digest.update(b"\x00" + json.dumps(settings, sort_keys=True, ensure_ascii=False).encode())
    phones = PhoneNames()
    rows = 0
    for rows, values in enumerate(records, start=1):  # noqa: B007 - the last number is the row count
        if found := phone_and_name(values, mapping, registry):
            phones.add(*found)
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Plan(path, encoding, delimiter, mapping, digest.hexdigest(), rows, phones, wire.format_time(modified))


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


def prepared_rows(
    plan: Plan, registry: Registry, options: ImportOptions, today: date, after: int = 0
) -> Iterator[PreparedRow]:
    """Second pass: every data row past row ``after`` prepared, with the phone + name rule applied."""
    records = _records(plan.path, plan.encoding, plan.delimiter)
    next(records)
    for number, values in enumerate(records, start=1):
        if number <= after:
            continue
        prepared = prepare_row(number, values, plan.mapping, registry, date_order=options.date_order, today=today)
        if not prepared.rejected:
            plan.phones.apply(prepared)
        yield prepared


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
    rows = _outcomes(items, newest_before, stats)
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
        return
    savepoint.commit()
    for item, customer_id in zip(linked, result.customer_ids, strict=True):
        item.customer_id, item.reviewed = customer_id, bool(result.reviewed)
    stats.created += result.created
    stats.merged += result.merged
    stats.reviewed += result.reviewed


_Outcome = tuple[int, int | None, str | None, int | None, str, str]


def _outcomes(items: list[_Item], newest_before: int, stats: RunStats) -> list[_Outcome]:
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
                outcome, reason = "suggestion", f"{reason}; weak match sent to review"
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
        for outcome, count in attempt_stats.outcomes.items():
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + count
        return
