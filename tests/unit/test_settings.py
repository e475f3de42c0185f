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
