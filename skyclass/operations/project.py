"""Where the skyclass checkout is: the Chalice project (``app.py``, ``.chalice/``) that the
local stack serves and that deploy, bootstrap and teardown write to."""

from __future__ import annotations

import json
from pathlib import Path

# This file is skyclass/operations/project.py in the checkout.
PROJECT_DIR = Path(__file__).resolve().parents[2]


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
