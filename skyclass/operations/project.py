"""Where the skyclass project is: the Chalice project (``app.py``, ``.chalice/``).

The local stack serves the installed checkout (``PROJECT_DIR``). Deploy, bootstrap and
teardown work on the project around the current directory (``project_around``), as
``chalice`` itself does: run from another copy of the project, they write that copy's
``.chalice/``, not the installed checkout's.
"""

from __future__ import annotations

import json
from pathlib import Path

from skyclass.runtime.errors import SkyclassError

# This file is skyclass/operations/project.py in the checkout.
PROJECT_DIR = Path(__file__).resolve().parents[2]


class ProjectNotFoundError(SkyclassError):
    code = "ProjectNotFound"


def is_project(folder: Path) -> bool:
    return (folder / "app.py").is_file() and (folder / ".chalice" / "config.json").is_file()


def project_around(start: Path | None = None) -> Path:
    """The Chalice project holding ``start`` (default: the current directory): the
    nearest folder, from it upwards, with ``app.py`` and ``.chalice/config.json``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if is_project(folder):
            return folder
    raise ProjectNotFoundError(
        f"no skyclass project (app.py and .chalice/config.json) in {start} or above it: "
        "run from the project, or name it with --project-dir")


def chalice_stage_env(project_dir: Path, stage: str) -> dict[str, str]:
    """The environment variables ``.chalice/config.json`` gives the stage's Lambdas
    (global first, the stage's own over them); none if the project has no config."""
    path = project_dir / ".chalice" / "config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    return {
        **config.get("environment_variables", {}),
        **config.get("stages", {}).get(stage, {}).get("environment_variables", {}),
    }
