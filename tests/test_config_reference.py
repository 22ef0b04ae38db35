"""Every setting of both deployables is documented, row for row, in the README's configuration reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import reference_rows

README = Path(__file__).resolve().parent.parent / "README.md"


def deployables():
    from central.config import CentralConfig
    from edge_agent.config import AgentConfig

    return [("edge agent", AgentConfig, "EDGE_"), ("central", CentralConfig, "CENTRAL_")]


@pytest.mark.parametrize(("name", "cls", "prefix"), deployables(), ids=["edge_agent", "central"])
def test_every_setting_is_in_the_readme(name, cls, prefix):
    text = README.read_text(encoding="utf-8")
    missing = [row for row in reference_rows(cls, prefix) if row not in text]
    assert missing == [], (
        f"README.md's configuration reference for the {name} lacks or misstates these rows "
        f"(regenerate with `python -m tools.settings_reference`):\n" + "\n".join(missing)
    )
