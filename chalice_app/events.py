"""The S3-event Lambda: an object landed in the input bucket (ARCHITECTURE.md, data flow).

Chalice subscribes ``on_s3_event`` to the bucket named by ``SKYCLASS_INPUT_BUCKET`` when
it deploys, so that variable must be set (in the shell or in ``.chalice/config.json``)
for ``chalice deploy``; without it the subscription names a bucket that cannot exist
(``unset-SKYCLASS_INPUT_BUCKET``) and the deploy fails saying so. At run time the
handler resolves its names like every other Lambda (chalice_app/wiring.py).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from chalice import Blueprint
from chalice.app import S3Event

from chalice_app.wiring import services
from skyclass.runtime import constants as c

bp = Blueprint(__name__)

SUBSCRIBED_BUCKET = os.environ.get(c.INPUT_BUCKET) or f"unset-{c.INPUT_BUCKET}"


@bp.on_s3_event(bucket=SUBSCRIBED_BUCKET, events=["s3:ObjectCreated:*"])
def on_s3_event(event: S3Event) -> dict[str, Any]:
    """Queue the new image(s) or fail them at once (skyclass.runtime.ingest).

    Lambda handler ``chalice_app.events.on_s3_event``. Chalice wraps this function, so
    the registered object is called as Lambda calls it, with the raw notification and
    a context: ``on_s3_event({"Records": [record]}, context)``; the local bridge does
    the same. The raw event must hold ``Records`` (Chalice reads the first record).
    """
    return asdict(services().ingestor.handle_event(event.to_dict()))
