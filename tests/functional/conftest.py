"""Functional-tier fixtures: the Lambda's environment for the provisioned stage, the API
through Chalice's test client, and the worker's engine on the tiny model."""

import pytest

from chalice_app import wiring
from skyclass.runtime import constants as c
from tests.support.api import MAX_IMAGE_BYTES
from tests.support.paths import REPO_ROOT
from tests.support.worker import World


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


@pytest.fixture
def client(lambda_env):
    """The API (``app.py``, every route and middleware) through Chalice's test client."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as test_client:
        yield test_client


@pytest.fixture
def tls_aws(aws, monkeypatch):
    """The in-process emulator as `skyclass emulator` runs it: requests count as TLS (a
    deployed stage's buckets refuse anything else), and an image's snapshot gets
    CreateImage's tags (teardown may delete only what carries them)."""
    from moto.s3.models import FakeBucket

    from skyclass.operations.local.emulator import count_requests_as_tls, tag_image_snapshots

    monkeypatch.setattr(FakeBucket, "get_permission", FakeBucket.get_permission)
    count_requests_as_tls()
    tag_image_snapshots(monkeypatch.setattr)
    return aws


@pytest.fixture(scope="session")
def engine(tiny_model):
    """The worker's inference engine on the tiny model, built and warmed up once."""
    from ec2_worker.engine import InferenceEngine
    from ec2_worker.model import custom_classifier

    engine = InferenceEngine(
        custom_classifier(tiny_model.model_path, str(tiny_model.labels_path)), top_k=5
    )
    engine.warm_up()
    return engine


@pytest.fixture
def world(aws, stage, settings, engine):
    """The provisioned stage seen from a worker (tests/support/worker.py)."""
    return World(aws, stage, settings, engine)
