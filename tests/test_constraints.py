"""Dependencies are ranges in pyproject.toml and exact pins in constraints.txt, which ./dev installs with."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            out[name.lower().replace("_", "-")] = version
    return out


def test_every_declared_dependency_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    missing = sorted({_name(r) for r in declared} - set(pins()))
    assert missing == [], f"add exact pins to constraints.txt for: {', '.join(missing)}"


def test_the_environment_matches_the_pins():
    drift = []
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-specific dependency of a dependency
        if installed != version:
            drift.append(f"{name} {installed} installed, {version} pinned")
    assert drift == [], "; ".join(drift)


def test_dev_installs_with_the_constraints_and_reinstalls_when_they_change():
    script = (REPO / "dev").read_text()
    assert "-c constraints.txt" in script
    assert "cat pyproject.toml constraints.txt | sha256sum" in script
