"""Settings: an explicit argument beats the environment variable, which beats the default;
a value that cannot be used is the operator's error, and names its variable."""

import pytest

from skyclass.runtime.errors import BadRequestError, ConfigurationError
from skyclass.runtime.settings import Settings


def test_defaults_apply_without_environment():
    settings = Settings.from_env({})
    assert settings.stage == "local" and settings.model == "resnet50" and settings.top_k == 5


def test_environment_beats_default_and_argument_beats_environment():
    env = {"SKYCLASS_MAX_WORKERS": "7", "SKYCLASS_TOP_K": "3", "SKYCLASS_IDLE_GRACE": "2.5"}
    assert Settings.from_env(env).max_workers == 7
    assert Settings.from_env(env).idle_grace == 2.5
    assert Settings.from_env(env, max_workers=2).max_workers == 2


@pytest.mark.parametrize(("environ", "overrides", "named"), [
    ({"SKYCLASS_MAX_WORKERS": "many"}, {}, "SKYCLASS_MAX_WORKERS"),
    ({}, {"min_workers": 3, "max_workers": 1}, "SKYCLASS_MIN_WORKERS"),
    ({"SKYCLASS_TOP_K": "0"}, {}, "SKYCLASS_TOP_K"),
    ({"SKYCLASS_PRECISION": "fp8"}, {}, "SKYCLASS_PRECISION"),
    ({"SKYCLASS_BATCH_SIZE": "0"}, {}, "SKYCLASS_BATCH_SIZE"),
    ({"SKYCLASS_CLASSIFY_TIMEOUT": "30"}, {}, "SKYCLASS_CLASSIFY_TIMEOUT"),
])
def test_bad_values_are_configuration_errors_naming_the_variable(environ, overrides, named):
    with pytest.raises(ConfigurationError, match=named) as raised:
        Settings.from_env(environ, **overrides)
    # Not a client's error: the API must not answer it with a 4xx.
    assert not isinstance(raised.value, BadRequestError)


def test_as_env_round_trips():
    settings = Settings.from_env({}, max_workers=9, labels="/tmp/labels.txt")
    assert Settings.from_env(settings.as_env()) == settings


def test_it_knows_what_was_configured_rather_than_defaulted():
    # GIVEN a batch size set to its default value, and a pool size given as an argument
    settings = Settings.from_env({"SKYCLASS_BATCH_SIZE": "32"}, max_workers=2)
    # THEN both count as chosen, and nothing else does
    assert settings.is_configured("batch_size") and settings.is_configured("max_workers")
    assert not settings.is_configured("top_k")
    assert settings.as_env(only_configured=True) == {
        "SKYCLASS_BATCH_SIZE": "32", "SKYCLASS_MAX_WORKERS": "2"}
    # AND a replaced value counts as chosen too
    assert settings.replace(top_k=3).is_configured("top_k")


# ---- the region, from the chain the AWS SDKs and Chalice use -------------------------

def _config_file(tmp_path, text):
    path = tmp_path / "aws-config"
    path.write_text(text)
    return str(path)


def test_the_region_comes_from_aws_default_region_when_aws_region_is_unset():
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"


def test_aws_region_beats_aws_default_region_and_an_argument_beats_both():
    env = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert Settings.from_env(env).region == "eu-central-1"
    assert Settings.from_env(env, region="ap-south-1").region == "ap-south-1"


def test_the_region_comes_from_the_profile_when_no_variable_names_one(tmp_path):
    config = _config_file(tmp_path, "[default]\nregion = us-west-2\n"
                                    "[profile work]\nregion = eu-north-1\n")
    assert Settings.from_env({"AWS_CONFIG_FILE": config}).region == "us-west-2"
    assert Settings.from_env({"AWS_CONFIG_FILE": config,
                              "AWS_PROFILE": "work"}).region == "eu-north-1"


def test_a_profile_that_does_not_exist_is_named(tmp_path):
    config = _config_file(tmp_path, "[default]\nregion = us-west-2\n")
    with pytest.raises(ConfigurationError, match="AWS_PROFILE='nope'"):
        Settings.from_env({"AWS_CONFIG_FILE": config, "AWS_PROFILE": "nope"})


def test_without_any_region_the_clients_say_so_plainly(tmp_path, monkeypatch):
    # GIVEN no region in the environment, nor in a profile
    from skyclass.runtime.aws import AwsClients

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = Settings.from_env()
    assert settings.region is None
    # WHEN clients are made for it THEN the error says where a region goes
    with pytest.raises(ConfigurationError, match="no AWS region: set AWS_REGION"):
        AwsClients(settings.region)


def test_the_clients_use_the_region_the_settings_found(monkeypatch):
    from skyclass.runtime.aws import AwsClients

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    aws = AwsClients(Settings.from_env().region)
    assert aws.region == "eu-west-1" and aws.sqs.meta.region_name == "eu-west-1"
