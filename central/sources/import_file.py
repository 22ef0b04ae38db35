"""Reading a legacy member file: how to read it and what its columns hold (the plan), then its rows.

The first pass (:func:`plan_import`) settles the encoding and delimiter, maps the columns, hashes
the file and the mapping into the import's digest, counts the rows and runs the phone + name rule
over the whole file; the second (:func:`prepared_rows`) reads each row into the fields of its
event. :mod:`central.sources.member_import` stores them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from central import audit
from central.identity.registry import Registry
from central.sources.import_mapping import (
    Mapping,
    MappingError,
    PhoneNames,
    PreparedRow,
    build_mapping,
    phone_and_name,
    prepare_row,
)
from central.sources.legacy_formats import detect_encoding, sniff_delimiter
from shared import wire

# Rows a transaction. At 100,000 rows, 5,000 a transaction used 10 to 15 % less CPU per row than
# 1,000 (fewer commits, each writing the index pages its rows touched; docs/benchmarks.md,
# 2026-12-01). A kill loses at most one chunk; a chunk that sends anything to review is resolved
# again row by row.
DEFAULT_CHUNK = 5000
OPERATOR_CLI = audit.cli_actor()


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


def _records(path: Path, encoding: str, delimiter: str) -> Iterator[list[str]]:
    with path.open("r", encoding=encoding, newline="") as stream:
        reader = csv.reader(stream, delimiter=delimiter)
        try:
            yield from reader
        except csv.Error as exc:
            raise ValueError(f"{path}, line {reader.line_num}: {exc}; the file is not CSV as exported") from None


class OptionError(ValueError):
    """An import option that cannot work, whatever the file: a delimiter of two characters, a score of -5."""


def check_options(options: ImportOptions) -> None:
    """Refuse options no file could be read with, before anything is read (:class:`OptionError`)."""
    if options.delimiter is not None and (len(options.delimiter) != 1 or options.delimiter in '"\r\n'):
        raise OptionError(
            f"delimiter {options.delimiter[:8]!r}: one character other than a quote or a line break (\\t for tab)"
        )
    score = options.merge_suggestions
    if score is not None and not (isinstance(score, float | int) and math.isfinite(score) and 0 < score <= 1):
        raise OptionError(f"merge suggestions: a score above 0 and at most 1, such as 0.9, not {score}")


def plan_import(path: Path, options: ImportOptions, registry: Registry) -> Plan:
    """First pass: read the header, build the mapping, hash file and mapping, apply the phone + name rule."""
    check_options(options)
    encoding = options.encoding or detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as stream:
        first_line = stream.readline()
    delimiter = options.delimiter or sniff_delimiter(first_line)
    records = _records(path, encoding, delimiter)
    header = next(records, None)
    if header is None:
        raise ValueError(f"{path} is empty: expected a header line, then one member a line")
    mapping = build_mapping(header, options.maps, str(path), registry.types.keys())
    if mapping.has_consent and not options.consent_notice:
        # A grant names the notice the customer was shown; a legacy file's says which it was, or that none was kept.
        raise MappingError(
            "the mapping reads consent columns: name the privacy notice they were answered under with"
            " --consent-notice VERSION (consent_notice= over the API), or legacy if the old system kept none"
        )
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
