"""pyproject.toml declares what the code imports; requirements*.txt pin it inside those ranges."""
from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = ("gateway", "channels", "audiences", "messages", "devices")
FIRST_PARTY = {*RUNTIME, "tests", "bench", "wsgi"}
#: Libraries reached through another's configuration, never imported by name.
LOADED_BY_NAME = {
    "psycopg",  # SQLAlchemy's postgresql+psycopg dialect
    "gunicorn",  # the production server, started as `gunicorn wsgi:app` (deploy/)
}


def declared(extra: str | None = None) -> dict[str, Requirement]:
    entries = PROJECT["optional-dependencies"][extra] if extra else PROJECT["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, entries)}


def pinned(*files: str) -> dict[str, str]:
    pins = {}
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("==")
                pins[canonicalize_name(Requirement(package).name)] = version.strip()
    return pins


def third_party_imports(folders) -> set[str]:
    """Distributions whose modules the code in these folders imports."""
    owners = packages_distributions()
    found = set()
    for folder in folders:
        paths = [ROOT / f"{folder}.py"] if (ROOT / f"{folder}.py").exists() else \
            (ROOT / folder).rglob("*.py")
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
                for top in {n.split(".")[0] for n in names}:
                    if top in FIRST_PARTY or top in sys.stdlib_module_names:
                        continue
                    found.update(canonicalize_name(d) for d in owners.get(top, [top]))
    return found


def test_every_direct_dependency_is_pinned_inside_its_range():
    lock = pinned("requirements.txt")
    outside = {name: lock.get(name) for name, requirement in declared().items()
               if lock.get(name) is None or lock[name] not in requirement.specifier}
    assert outside == {}


def test_every_dev_dependency_is_pinned_inside_its_range():
    lock = pinned("requirements.txt", "requirements-dev.txt")
    outside = {name: lock.get(name) for name, requirement in declared("dev").items()
               if lock.get(name) is None or lock[name] not in requirement.specifier}
    assert outside == {}


def test_the_code_imports_only_what_is_declared_and_uses_all_of_it():
    runtime = set(declared())
    imports = third_party_imports(("wsgi", *RUNTIME))
    assert imports - runtime == set(), "declare these in pyproject.toml"
    assert runtime - imports - LOADED_BY_NAME == set(), "these are declared but never imported"


def test_tests_and_benchmarks_import_only_what_is_declared():
    imports = third_party_imports(("tests", "bench"))
    missing = imports - set(declared()) - set(declared("dev"))
    assert missing == set()
