"""A throwaway copy of the Chalice project, for tests that deploy or package a stage:
``skyclass bootstrap`` writes the stage into ``.chalice/``, which must not be this
checkout's. The code itself is linked, not copied (vendor/ resolves through links)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.paths import REPO_ROOT


def chalice_project(folder: Path) -> Path:
    (folder / ".chalice").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".chalice" / "config.json", folder / ".chalice" / "config.json")
    for name in ("app.py", "requirements.txt"):
        shutil.copy(REPO_ROOT / name, folder / name)
    for name in ("chalice_app", "vendor", "skyclass", "ec2_worker", "ami_build",
                 "pyproject.toml", "constraints.txt"):
        (folder / name).symlink_to(REPO_ROOT / name)
    return folder
