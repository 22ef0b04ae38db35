"""Print the configuration reference rows for the README, or rewrite the README's tables in place.

python -m tools.settings_reference           # print both tables
python -m tools.settings_reference --write   # replace the rows under each table header in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from central.config import CentralConfig
from edge_agent.config import AgentConfig
from shared.settings import reference_rows

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = (("Edge agent", AgentConfig, "EDGE_"), ("Central", CentralConfig, "CENTRAL_"))
HEADER = "| setting | environment variable | type | default | meaning |\n|---|---|---|---|---|"


def rewrite(text: str) -> str:
    """Replace each table's rows (or its SETTINGS_* placeholder) with freshly generated rows."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        for title, cls, prefix in TABLES:
            if lines[i] == f"#### {title}":
                # keep the blank line and the two header lines, then skip the old rows
                out.extend(lines[i + 1 : i + 4])
                i += 4
                while i < len(lines) and (lines[i].startswith("| `") or lines[i].startswith("SETTINGS_")):
                    i += 1
                out.extend(reference_rows(cls, prefix))
                i -= 1
        i += 1
    return "\n".join(out) + "\n"


def main() -> None:
    if "--write" in sys.argv:
        README.write_text(rewrite(README.read_text(encoding="utf-8")), encoding="utf-8")
        return
    for title, cls, prefix in TABLES:
        print(f"#### {title}\n\n{HEADER}")
        print("\n".join(reference_rows(cls, prefix)) + "\n")


if __name__ == "__main__":
    main()
