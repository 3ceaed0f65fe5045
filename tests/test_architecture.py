"""The rules of docs/architecture.md, checked on the source: which layer may import
which, and who writes the delivery ledger."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "channels", "audiences", "messages", "devices")

#: A module under the first prefix may not import anything under the second.
FORBIDDEN = [
    ("gateway.store", "gateway.delivery"),
    ("gateway.store", "gateway.web"),
    ("gateway.delivery", "gateway.web"),
    ("channels", "gateway"), ("channels", "audiences"),
    ("audiences", "gateway"),
    ("messages", "gateway"), ("messages", "channels"), ("messages", "audiences"),
    ("devices", "gateway"), ("devices", "audiences"), ("devices", "messages"),
]
#: The tables only the ledger writes.
LEDGER_TABLES = ("deliveries", "delivery_counts", "reached")
LEDGER = "gateway/store/ledger/"
#: A migration may fill in a column it adds to a ledger table: it runs before any worker does.
MIGRATIONS = "gateway/store/migrations/"


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
            yield name, path


def imported(name: str, path: Path) -> set[str]:
    """Every module this file imports, at the top or inside a function."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_no_layer_imports_one_it_must_not():
    broken = sorted(f"{name} imports {target}" for name, path in modules()
                    for target in imported(name, path)
                    for source, banned in FORBIDDEN
                    if under(name, source) and under(target, banned))
    assert broken == []


def test_devices_take_only_the_loudspeaker_protocol_from_the_project():
    allowed = ("devices", "channels.loudspeaker.protocol")
    broken = sorted(f"{name} imports {target}" for name, path in modules()
                    if under(name, "devices")
                    for target in imported(name, path)
                    if target.split(".")[0] in PACKAGES and not any(under(target, a) for a in allowed)
                    and target != "channels.loudspeaker" and target != "channels")
    assert broken == []


_WRITE = re.compile(r"\b(?:insert|update|delete)\(\s*(%s)\b|\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+(%s)\b"
                    % ("|".join(LEDGER_TABLES), "|".join(LEDGER_TABLES)), re.IGNORECASE)


def test_only_the_ledger_writes_deliveries():
    writers = sorted(f"{path.relative_to(ROOT)}: {match.group(0)}"
                     for _, path in modules()
                     if not path.relative_to(ROOT).as_posix().startswith((LEDGER, MIGRATIONS))
                     for match in _WRITE.finditer(path.read_text(encoding="utf-8")))
    assert writers == []


@pytest.mark.parametrize("line, writes", [
    ("conn.execute(update(deliveries).where(x))", True),
    ("dialect.insert(deliveries).values(a=1)", True),
    ("insert(delivery_counts)", True),
    ("conn.exec_driver_sql('INSERT INTO deliveries (a) VALUES (1)')", True),
    ("conn.execute(select(deliveries.c.id))", False),
    ("update(devices).values(online=True)", False),
])
def test_the_ledger_check_sees_a_write(line, writes):
    assert bool(_WRITE.search(line)) is writes


def test_the_import_check_sees_an_import(tmp_path):
    source = tmp_path / "ledger.py"
    source.write_text("from gateway.web import api\n\ndef f():\n    from ..delivery import jobs\n")
    found = imported("gateway.store.ledger", source)
    assert {"gateway.web.api", "gateway.delivery.jobs"} <= found
