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
OPERATIONS = ("skyclass.operations", "ami_build", "bench", "testbed", "tests")
TESTS = REPO / "tests"


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


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """Every module ``path`` (module ``module``, by default its place in the checkout)
    imports, relative imports resolved against its package."""
    package = (module or module_name(path)).rsplit(".", 1)[0].split(".")
    names = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imported_from_tests(path: Path, module: str | None = None) -> list[str]:
    """What ``path`` imports of tests/ other than tests/support (which is there to be
    imported); for a file in tests/support, nothing of tests/ outside it either."""
    return sorted(m for m in imports_of(path, module)
                  if (m == "tests" or m.startswith("tests.")) and not m.startswith("tests.support"))


def test_no_test_module_or_conftest_imports_another_module_of_tests():
    # GIVEN every Python file under tests/ (test modules, conftest.py files, support)
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 60
    # THEN what they share comes from tests/support only: no test imports another test
    # module, nor a conftest's helpers (fixtures reach tests through pytest, not imports)
    offending = {str(path.relative_to(REPO)): imported_from_tests(path) for path in files}
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_bench_and_testbed_never_import_the_tests():
    files = sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "testbed").rglob("*.py"))
    assert len(files) > 5
    offending = {str(path.relative_to(REPO)): sorted(m for m in imports_of(path)
                                                      if m == "tests" or m.startswith("tests."))
                 for path in files}
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_the_check_sees_one_test_module_importing_another(tmp_path):
    # GIVEN test modules that import another's helper, absolutely and relatively
    absolute = tmp_path / "a.py"
    absolute.write_text("from tests.functional.test_worker import World\n")
    relative = tmp_path / "b.py"
    relative.write_text("from .test_policy import anything\nfrom ..support import images\n")
    # THEN the check names both, and not the import of tests/support
    assert "tests.functional.test_worker" in imported_from_tests(absolute, "tests.unit.a")
    assert imported_from_tests(relative, "tests.unit.b") == [
        "tests.unit.test_policy", "tests.unit.test_policy.anything"]
