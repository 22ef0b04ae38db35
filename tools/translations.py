"""The console's message catalogue: find every Chinese message id, compile the English ``.po`` to ``.mo``.

python -m tools.translations --write   # compile central/console/translations/en/.../messages.mo
python -m tools.translations --check   # exit 1 if a message lacks English or the .mo is stale
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "central" / "console"
PO = CONSOLE / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
_TEMPLATE_CALL = re.compile(r"""_\('([^']+)'\s*[,)]""")
_PYTHON_CALL = re.compile(r'_\(\s*"([^"]+)"')
_CHINESE = re.compile(r'"([^"]*[\u4e00-\u9fff][^"]*)"')


def message_ids() -> set[str]:
    """Every message id the console uses: ``_()`` in templates and views, and the Chinese texts in navigation."""
    found: set[str] = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        found.update(_TEMPLATE_CALL.findall(template.read_text(encoding="utf-8")))
    for module in CONSOLE.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        found.update(_PYTHON_CALL.findall(text))
        if module.name == "navigation.py":
            found.update(_CHINESE.findall(text))
    return found


def compiled() -> bytes:
    """The .mo the .po compiles to."""
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def problems() -> list[str]:
    """What is wrong with the catalogue: missing translations, a stale .mo."""
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    translated = {m.id for m in catalog if m.id and m.string}
    out = [f"no English for {mid!r} in {PO.relative_to(ROOT)}" for mid in sorted(message_ids() - translated)]
    if not MO.is_file() or MO.read_bytes() != compiled():
        out.append(f"{MO.relative_to(ROOT)} is stale: run python -m tools.translations --write")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="compile the .mo")
    parser.add_argument("--check", action="store_true", help="report missing translations and a stale .mo")
    args = parser.parse_args(argv)
    if args.write:
        MO.write_bytes(compiled())
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
