"""Functional-tier fixtures: the Lambda's environment for the provisioned stage."""

import pytest

from chalice_app import wiring
from skyclass.runtime import constants as c

# Small limits, so the tests can cross them with small bodies.
MAX_IMAGE_BYTES = 1000


@pytest.fixture
def lambda_env(stage, monkeypatch):
    """The Lambda's environment for the provisioned stage, as config.json + deploy give
    it; the Lambda's objects are rebuilt for it and forgotten afterwards."""
    r = stage.resources
    for name, value in {
        c.STAGE: r.stage,
        c.INPUT_BUCKET: r.input_bucket,
        c.OUTPUT_BUCKET: r.output_bucket,
        c.QUEUE_URL: r.queue_url,
        c.DLQ_URL: r.dlq_url,
        c.MAX_WORKERS: "3",
        c.MAX_IMAGE_BYTES: str(MAX_IMAGE_BYTES),
        c.CLASSIFY_TIMEOUT: "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    yield r
    wiring.reset()
