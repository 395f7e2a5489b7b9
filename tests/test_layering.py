"""Enforce the layers of DESIGN.md by reading every module's imports (AST, nothing executed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = "indirect_attention"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# Which areas of the package each area may import (besides itself).
ALLOWED_AREAS = {
    "core": set(),
    "training": set(),
    "plots": set(),
    "theory": {"core", "training", "plots"},
    "tasks": {"core", "training", "plots"},
    "detection": {"core", "training"},
    # bench times the models tasks and detection build and train, never a re-assembly of them
    "bench": {"core", "training", "tasks", "detection"},
    # report reads run records (JSON); it recomputes the theory verdicts from their rows
    "report": {"training", "theory"},
    "reproduce": {"core", "training", "theory", "tasks", "detection", "bench", "plots", "report"},
    # the `ia demo` web page: runs detection's one prediction path and drawing on uploaded images
    "demo": {"detection"},
    "cli": {
        "core",
        "training",
        "theory",
        "tasks",
        "detection",
        "bench",
        "plots",
        "report",
        "reproduce",
        "demo",
    },
    "__init__": {"core"},
    "__main__": {"cli"},
}
# Third-party packages each area may import (the standard library is always allowed).
ALLOWED_EXTERNAL = {
    "core": {"torch"},
    "training": {"torch"},
    "plots": {"matplotlib", "numpy"},
    "theory": {"torch", "numpy"},
}
# Files in tasks/ that are one task each: none of them may import another.
TASK_FILES = {"sorting", "retrieval", "lookup"}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of everything ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
                if node.module is None:
                    names.extend(f"{target}.{alias.name}" for alias in node.names)
                else:
                    names.append(target)
            else:
                names.append(node.module or "")
    return names


def _violations() -> list[str]:
    problems = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = _module_name(path)
        area = _area(module)
        if area not in ALLOWED_AREAS:
            problems.append(f"{module}: area {area!r} is not in the layering table")
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top == PACKAGE:
                target = _area(name)
                if target != area and target not in ALLOWED_AREAS[area]:
                    problems.append(f"{module} imports {name} ({area} -> {target} is forbidden)")
                if area == target == "tasks":
                    own = module.split(".")[2] if module.count(".") >= 2 else ""
                    other = name.split(".")[2] if name.count(".") >= 2 else ""
                    if own in TASK_FILES and other in TASK_FILES and own != other:
                        problems.append(f"{module} imports another task, {name}")
            elif (
                top not in sys.stdlib_module_names
                and area in ALLOWED_EXTERNAL
                and top not in ALLOWED_EXTERNAL[area]
            ):
                problems.append(f"{module} imports {top}, not allowed in {area}")
    return problems


def test_source_tree_found():
    assert (SOURCE / "core" / "functional.py").exists()
    assert len(list(SOURCE.rglob("*.py"))) >= 10


def test_layers_are_respected():
    assert _violations() == []


@pytest.mark.parametrize(
    ("area", "code", "expected"),
    [
        ("core", "import numpy\n", "imports numpy, not allowed in core"),
        ("core", "from ..detection import model\n", "core -> detection is forbidden"),
        ("plots", "import torch\n", "imports torch, not allowed in plots"),
        ("tasks", "from .. import cli\n", "tasks -> cli is forbidden"),
        ("tasks", "from .retrieval import x\n", "imports another task"),
    ],
)
def test_checker_catches_forbidden_edges(tmp_path, monkeypatch, area, code, expected):
    """The checker itself fails on a planted forbidden import."""
    fake = tmp_path / PACKAGE
    (fake / area).mkdir(parents=True)
    (fake / "core").mkdir(exist_ok=True)
    (fake / "core" / "functional.py").write_text("")
    name = "sorting.py" if area == "tasks" else "planted.py"
    (fake / area / name).write_text(code)
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", fake)
    assert any(expected in problem for problem in _violations())


def _module_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name resolves to its longest module)."""
    modules = {_module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(path):
            parts = name.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != module:
                targets.add(".".join(parts))
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """Import circles among the modules under ``prefix`` (one path per circle found)."""
    nodes = {m for m in graph if m.startswith(prefix)}
    found, state = [], dict.fromkeys(nodes, 0)  # 0 new, 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node] & nodes):
            if state[nxt] == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(nodes):
        if state[node] == 0:
            visit(node, [node])
    return found


def test_cycle_finder_sees_a_planted_circle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert _cycles(graph, "p.") == [["p.a", "p.b", "p.c", "p.a"]]


@pytest.mark.parametrize("area", ["detection", "training", "core"])
def test_no_import_circles(area: str):
    assert _cycles(_module_graph(), f"{PACKAGE}.{area}") == []
