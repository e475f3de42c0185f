"""Settings: an explicit argument beats the environment variable, which beats the default."""

import pytest

from skyclass.runtime.errors import BadRequestError
from skyclass.runtime.settings import Settings


def test_defaults_apply_without_environment():
    settings = Settings.from_env({})
    assert settings.stage == "local" and settings.model == "resnet50" and settings.top_k == 5


def test_environment_beats_default_and_argument_beats_environment():
    env = {"SKYCLASS_MAX_WORKERS": "7", "SKYCLASS_TOP_K": "3", "SKYCLASS_IDLE_GRACE": "2.5"}
    assert Settings.from_env(env).max_workers == 7
    assert Settings.from_env(env).idle_grace == 2.5
    assert Settings.from_env(env, max_workers=2).max_workers == 2


def test_bad_values_are_refused_with_the_variable_named():
    with pytest.raises(BadRequestError, match="SKYCLASS_MAX_WORKERS"):
        Settings.from_env({"SKYCLASS_MAX_WORKERS": "many"})
    with pytest.raises(BadRequestError, match="min_workers"):
        Settings.from_env({}, min_workers=3, max_workers=1)


def test_as_env_round_trips():
    settings = Settings.from_env({}, max_workers=9, labels="/tmp/labels.txt")
    assert Settings.from_env(settings.as_env()) == settings
