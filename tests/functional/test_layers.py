"""Importing what AWS runs loads no operations module: the Lambda app with every handler,
and the worker's entry point, each in a fresh interpreter (what a cold start imports)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO_ROOT

PROBE = """
import json, sys
import {modules}
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith(("skyclass.operations", "ami_build")))))
"""


def loaded_operations(*modules: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", PROBE.format(modules=", ".join(modules))],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_lambda_cold_start_loads_no_operations_module():
    assert loaded_operations("app", "chalice_app.events", "chalice_app.scaling",
                             "chalice_app.wiring") == []


def test_the_worker_loads_no_operations_module():
    assert loaded_operations("ec2_worker.__main__") == []


def test_the_probe_sees_an_operations_module():
    # The same probe, given an operations module, names it: the checks above can fail.
    assert "skyclass.operations.provision.stage" in loaded_operations(
        "skyclass.operations.provision.stage")
