"""The layout of the code: which part may import which, and no import cycles.

Read from the source (every import, those inside functions too), so that the
folders keep showing the architecture: the core of ``digits`` under
everything, recognition under serving and training, and only the command line
wiring them all together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PARTS = {
    "digits.cli": "cli",
    "digits.recognition": "recognition",
    "digits.training": "training",
    "digits": "core",
    "worker": "serving",
    "ingest": "queueing",
    "review": "station",
    "model_store": "data",
    "layouts": "data",
}
"""Module prefix -> part, the longest prefix first."""

MAY_IMPORT = {
    "data": {"data"},
    "core": {"core", "data"},
    "recognition": {"recognition", "core", "data"},
    "training": {"training", "recognition", "core", "data"},
    "serving": {"serving", "recognition", "core", "data"},
    "queueing": {"queueing", "core", "data"},
    "station": {"station", "core", "data"},
    "cli": {"cli", "serving", "queueing", "station", "training", "recognition", "core", "data"},
}
"""What each part may import: imports run one way, and only the command line wires everything."""


def part_of(module: str) -> str | None:
    for prefix, part in PARTS.items():
        if module == prefix or module.startswith(prefix + "."):
            return part
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    folders = {prefix.split(".")[0] for prefix in PARTS}
    return {module_name(path): path for folder in folders for path in (REPO / folder).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports a.b, and a.b.c if c is a module.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_every_module_belongs_to_a_part():
    assert all(part_of(name) for name in project_modules())


def test_imports_run_one_way():
    wrong = [
        f"{module} ({part_of(module)}) imports {imported} ({part_of(imported)})"
        for module, imported_modules in graph().items()
        for imported in imported_modules
        if part_of(imported) not in MAY_IMPORT[part_of(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(edges[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_rules_catch_a_wrong_import(tmp_path):
    # An import inside a function counts: a core module importing the queueing side lazily is found.
    assert part_of("digits.settings") == "core" and part_of("ingest.client") == "queueing"
    assert "queueing" not in MAY_IMPORT["core"]
    source = tmp_path / "probe.py"
    source.write_text("def later():\n    from ingest.client import Job\n")
    assert imports_of(source, {"digits.settings": Path(), "ingest.client": Path()}) == {"ingest.client"}
