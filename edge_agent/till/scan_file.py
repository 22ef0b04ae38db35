"""`edge-agent parse FILE --kind scan`: classify scanner payloads written one a line, as a technician checks a scanner.

A line may carry an AIM symbology identifier and GS1 group separators written as ``\\x1d``. Payment
codes print as their class only, like everywhere else in the agent.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from edge_agent.parsing.scan import classify, unescape

PROG = "edge-agent"


def print_scans(path: Path, *, as_json: bool) -> int:
    """Print one classification per non-empty line of ``path``; the exit status."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"{PROG}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    counts: Counter[str] = Counter()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        scan = classify(unescape(line))
        counts[scan.kind] += 1
        doc = {"line": number, **scan.as_json()}
        if as_json:
            print(json.dumps(doc, ensure_ascii=False), flush=True)
        else:
            detail = scan.gs1_hri or scan.gtin or scan.payment_scheme or scan.error or ""
            print(f"{number:>5}  {scan.kind:<8} {detail}")
    summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
    print(f"{path}: {sum(counts.values())} scans ({summary or 'none'})", file=sys.stderr)
    return 0
