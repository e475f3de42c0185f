"""Where the skyclass checkout is: the Chalice project (``app.py``, ``.chalice/``) that the
local stack serves and that deploy, bootstrap and teardown write to."""

from __future__ import annotations

from pathlib import Path

# This file is skyclass/operations/project.py in the checkout.
PROJECT_DIR = Path(__file__).resolve().parents[2]
