"""Loading a custom model (``SKYCLASS_MODEL=/path/model.keras`` + ``SKYCLASS_LABELS``):
it serves at its own input size with its own labels, and every misconfiguration is
refused with a message that says what to fix."""

from __future__ import annotations

import pytest

from ec2_worker.model import load_classifier
from skyclass.runtime.errors import ModelUnavailableError
from skyclass.runtime.settings import Settings


def custom(model, labels=None) -> Settings:
    return Settings.from_env({}, model=str(model), labels=str(labels) if labels else None)


def test_a_custom_model_serves_at_its_own_size_with_its_own_labels(tiny_model):
    classifier = load_classifier(custom(tiny_model.model_path, tiny_model.labels_path))
    assert classifier.name == "model.keras"
    assert classifier.input_size == tiny_model.input_size
    assert classifier.labels == [(None, label) for label in tiny_model.labels]


def test_labels_that_do_not_match_the_outputs_are_refused(tiny_model, tmp_path):
    # GIVEN a labels file with one label too few for the model
    outputs = len(tiny_model.labels)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n\n".join(tiny_model.labels[:-1]) + "\n")
    # WHEN it is loaded, THEN it is refused with both counts
    with pytest.raises(ModelUnavailableError,
                       match=f"has {outputs - 1} labels but model .* has {outputs} outputs"):
        load_classifier(custom(tiny_model.model_path, labels))


def test_a_custom_model_without_a_labels_file_is_refused(tiny_model):
    with pytest.raises(ModelUnavailableError, match="set SKYCLASS_LABELS"):
        load_classifier(custom(tiny_model.model_path))


@pytest.mark.parametrize("missing", ["model", "labels"])
def test_a_missing_file_is_named(tiny_model, tmp_path, missing):
    absent = tmp_path / "absent"
    model = absent if missing == "model" else tiny_model.model_path
    labels = absent if missing == "labels" else tiny_model.labels_path
    with pytest.raises(ModelUnavailableError, match=str(absent)):
        load_classifier(custom(model, labels))


def test_a_file_that_is_not_a_model_is_refused(tiny_model, tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    with pytest.raises(ModelUnavailableError, match=f"cannot load model {fake}"):
        load_classifier(custom(fake, tiny_model.labels_path))
