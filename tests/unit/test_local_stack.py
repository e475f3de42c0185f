"""How the local stack composes each child's environment."""

from __future__ import annotations

from datetime import UTC, datetime

from skyclass.operations.local.lambda_host import scheduled_event
from skyclass.operations.local.stack import (
    child_env,
    config_conflicts,
    emulator_env,
    stage_settings,
)
from skyclass.runtime import constants as c


def test_local_defaults_are_snappy_but_the_environment_wins():
    # GIVEN no scaling settings in the environment
    settings = stage_settings({}, max_workers=2, boot_delay=0.5)
    # THEN the demo scales every 2 s, idles out after 20 s, and works in batches of 8
    assert (settings.scale_period, settings.idle_grace) == (2.0, 20.0)
    assert settings.batch_size == 8
    assert (settings.stage, settings.max_workers, settings.boot_delay) == ("local", 2, 0.5)
    # AND a local worker counts as booting only for the simulated boot and its own start
    assert settings.boot_time == 10.5
    # GIVEN the developer set an idle grace
    settings = stage_settings({c.IDLE_GRACE: "5", c.STAGE: "prod"}, max_workers=1, boot_delay=0)
    # THEN it is kept, and the stage is still local
    assert (settings.idle_grace, settings.stage) == (5.0, "local")


def test_children_get_the_provisioned_names_and_the_configured_variables():
    # GIVEN the Chalice stage's variables, the shell's environment and a provisioned stage
    config = {c.TOP_K: "3"}
    environ = {**emulator_env("http://127.0.0.1:4566", "us-east-1"), c.MODEL: "/m.keras"}
    settings = stage_settings({**config, **environ}, max_workers=2, boot_delay=0).replace(
        input_bucket="in-b", output_bucket="out-b", queue_url="http://q", dlq_url="http://d"
    )
    # WHEN the child environment is composed
    env = child_env(environ, settings, config)
    # THEN the provisioned names, the emulator and the model reach every child
    assert env[c.INPUT_BUCKET] == "in-b"
    assert env[c.QUEUE_URL] == "http://q"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert env[c.MODEL] == "/m.keras"
    assert env[c.STAGE] == "local"
    # AND the workers see the same configured value the API process sees
    assert env[c.TOP_K] == "3"
    assert config_conflicts(config, env) == []


def test_a_configured_name_that_chalice_local_would_clobber_is_reported():
    # GIVEN the stage config names another input bucket than the one provisioned
    env = {c.INPUT_BUCKET: "in-b", c.STAGE: "local"}
    config = {c.INPUT_BUCKET: "other", c.STAGE: "local"}
    # WHEN the stack checks for conflicts
    warnings = config_conflicts(config, env)
    # THEN exactly that variable is named
    assert len(warnings) == 1
    assert c.INPUT_BUCKET in warnings[0] and "other" in warnings[0]


def test_scheduled_event_looks_like_eventbridge():
    # WHEN the local schedule builds the event for a tick
    event = scheduled_event("skyclass-scale", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    # THEN it has the shape EventBridge gives the scaling Lambda
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["time"] == "2026-01-02T03:04:05Z"
    assert event["resources"][0].endswith(":rule/skyclass-scale")
