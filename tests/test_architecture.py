"""The shape of the code (docs/architecture.md): imports run one way, app → trainer — the
trainer is a pure ML library that knows neither the web nor the database — and only the
worker process module of app/ imports torch."""

import ast
from pathlib import Path

from tests.stack import REPO


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_the_trainer_never_imports_the_service():
    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imports(p) if n.split(".")[0] in ("app", "fastapi",
                                                                                                   "sqlmodel",
                                                                                                   "sqlalchemy"))
                 for p in _modules("trainer")}
    assert {p: names for p, names in offenders.items() if names} == {}


def test_only_the_worker_module_of_the_service_imports_torch():
    importers = sorted(str(p.relative_to(REPO)) for p in _modules("app")
                       if any(n.split(".")[0] in ("torch", "torchvision") for n in _imports(p)))
    assert importers == ["app/worker.py"]
