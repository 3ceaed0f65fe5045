"""Imports inside ``messages`` run one way: no module imports, however indirectly, itself.

A cycle works only while its imports happen in a lucky order (or are hidden inside
functions), so every import counts here, at the top of a module or inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

import messages

PACKAGE = messages.__name__
PACKAGE_DIR = Path(messages.__file__).parent


def modules_of(package_dir: Path) -> dict[str, Path]:
    """Module name -> source file, for a package and its subpackages."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path, importer: str) -> set[str]:
    """Every module name an import statement in ``path`` names, relative ones resolved."""
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            source = ".".join(part for part in (base, node.module) if part)
            names.add(source)
            # "from messages import sms" imports the module messages.sms.
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def with_parents(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the other modules of the package it imports (the top package left out)."""
    graph = {}
    for name, path in modules.items():
        targets = set().union(*map(with_parents, imported_names(path, name)))
        graph[name] = {target for target in targets & modules.keys()
                       if target not in (name, PACKAGE)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as the list of modules along it, first repeated at the end; else None."""
    finished: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in finished:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        finished.add(module)
        return None

    return next(filter(None, map(visit, sorted(graph))), None)


def test_the_modules_of_messages_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph(modules_of(PACKAGE_DIR)))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_render_imports_the_formats_which_do_not_import_it():
    graph = import_graph(modules_of(PACKAGE_DIR))
    formats = {"messages.sms", "messages.speech", "messages.wechat"}
    assert formats <= graph["messages.render"]
    assert all("messages.render" not in graph[module] for module in formats)


def test_the_check_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    package_dir = tmp_path / PACKAGE
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    (package_dir / "first.py").write_text("from messages import second\n")
    (package_dir / "second.py").write_text("def later():\n    from .first import value\n")
    assert find_cycle(import_graph(modules_of(package_dir))) == [
        "messages.first", "messages.second", "messages.first"]
