"""The two layers (skyclass/__init__.py): the runtime, which runs in AWS, never imports the
operations layer, which puts it there. Read from the source's own import statements, so
a lazy import inside a function counts as much as one at the top of a module.

tests/functional/test_layers.py checks the same by importing the Lambda app and the
worker; tests/functional/test_package.py checks what the Lambda zip carries.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME = [REPO / "skyclass" / "runtime", REPO / "chalice_app", REPO / "ec2_worker",
           REPO / "app.py"]
OPERATIONS = ("skyclass.operations", "ami_build", "bench", "tests")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from … import`` in ``path`` names (absolute only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def runtime_files() -> list[Path]:
    files = []
    for root in RUNTIME:
        files.extend([root] if root.is_file() else sorted(root.rglob("*.py")))
    return files


def test_the_runtime_never_imports_the_operations_layer():
    # GIVEN every Python file of the runtime layer
    files = runtime_files()
    assert len(files) > 20
    # THEN none of them imports operations code, directly or lazily
    offending = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path)
                                            if m.startswith(OPERATIONS))
        for path in files
    }
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_the_check_sees_a_lazy_import(tmp_path):
    # GIVEN a module that imports operations code inside a function
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from skyclass.operations.provision import stage\n")
    # THEN the check names it
    assert "skyclass.operations.provision" in imported_modules(module)
