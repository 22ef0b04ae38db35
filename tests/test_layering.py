"""Import layering: `shared` imports neither deployable; the agent and central never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "shared": {"edge_agent", "central"},
    "edge_agent": {"central"},
    "central": {"edge_agent"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value).split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_layering(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package]) for path in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("import central.app\nfrom edge_agent import x\ndef f():\n    import shared.wire\n")
    assert imported_packages(sample) == {"central", "edge_agent", "shared"}
