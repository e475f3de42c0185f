"""The web page of ``GET /``, assembled from index.html, app.css and app.js.

The stylesheet and the script are inlined, and the API's upload limits embedded as
JSON, so the page is one document: it needs no further route, it reads its limits from
the same settings the API enforces (no number is written twice), and it works wherever
API Gateway mounts the app, at ``/api`` as well as ``/api/``, because the only URLs it
uses afterwards are relative to its own path (app.js).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
_CONFIG = "/*skyclass:config*/"
_STYLE = "/*skyclass:style*/"
_SCRIPT = "/*skyclass:script*/"


def render_page(config: dict[str, Any]) -> str:
    """The page with ``config`` (upload limits) embedded where app.js reads it."""
    # "<" escaped, so no value can close the <script> element it sits in.
    embedded = json.dumps(config, sort_keys=True).replace("<", "\\u003c")
    return _template().replace(_CONFIG, embedded, 1)


@functools.cache
def _template() -> str:
    page = (_HERE / "index.html").read_text(encoding="utf-8")
    style = (_HERE / "app.css").read_text(encoding="utf-8")
    script = (_HERE / "app.js").read_text(encoding="utf-8")
    for marker in (_CONFIG, _STYLE, _SCRIPT):
        if page.count(marker) != 1:
            raise RuntimeError(f"index.html must hold {marker} exactly once")
    return page.replace(_STYLE, style, 1).replace(_SCRIPT, script, 1)
