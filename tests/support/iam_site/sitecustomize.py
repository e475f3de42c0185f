"""Loads the IAM judge (tests/support/iam/judge.py) into every Python process the tests
start, when they ask for it: tests/conftest.py puts this folder on PYTHONPATH and names
the folder for findings in SKYCLASS_IAM_LOG_DIR. Python imports ``sitecustomize`` at
start-up, so the local stack's API, Lambda host and workers, and ``skyclass deploy``,
``teardown`` and ``chalice`` run as processes, are judged like the in-process tier."""

import os
import sys
from pathlib import Path

if os.environ.get("SKYCLASS_IAM_LOG_DIR"):
    sys.path.append(str(Path(__file__).resolve().parents[3]))
    from tests.support.iam.judge import Judge, install

    install(Judge(log_dir=Path(os.environ["SKYCLASS_IAM_LOG_DIR"]),
                  enforce=os.environ.get("SKYCLASS_IAM_ENFORCE", "1") != "0"))
