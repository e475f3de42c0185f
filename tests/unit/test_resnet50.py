"""The ResNet-50 graph, its preprocessing and its labels, tested with the untrained graph
(the ImageNet weights are not on this machine); and the refusal to run without weights."""

from __future__ import annotations

import numpy as np
import pytest

from ec2_worker.model import (
    RESNET50_WEIGHTS_FILE,
    imagenet_labels,
    load_classifier,
    resnet50_weights_path,
)
from skyclass.runtime.errors import ModelUnavailableError
from skyclass.runtime.settings import Settings


def test_imagenet_labels_are_in_output_order_with_their_wordnet_ids():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == ("n01440764", "tench")
    assert labels[585] == ("n03476991", "hair_spray")
    assert labels[999] == ("n15075141", "toilet_tissue")


def test_without_the_weights_file_the_worker_refuses_and_names_the_file(tmp_path, monkeypatch):
    # GIVEN a Keras home with no ImageNet weights in it
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # WHEN the default model is loaded
    with pytest.raises(ModelUnavailableError) as error:
        load_classifier(Settings.from_env({}))
    # THEN it refuses (no random weights), naming the exact file and how to get it
    expected = tmp_path / "models" / RESNET50_WEIGHTS_FILE
    assert str(expected) in error.value.message
    assert "python -m ec2_worker.weights" in error.value.message
    assert resnet50_weights_path() == expected


@pytest.fixture(scope="module")
def untrained():
    from ec2_worker.model import resnet50_classifier

    return resnet50_classifier(None)


@pytest.mark.slow
def test_the_graph_takes_224x224_rgb_and_scores_1000_classes(untrained):
    assert untrained.input_size == (224, 224)
    assert untrained.model.input_shape == (None, 224, 224, 3)
    assert untrained.model.output_shape == (None, 1000)
    assert len(untrained.labels) == 1000
    # an untrained graph can never pass for the real classifier in a result
    assert untrained.name == "resnet50-untrained"


@pytest.mark.slow
def test_preprocessing_is_keras_resnet50_preprocess_input(untrained):
    import keras

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    ours = np.asarray(untrained.preprocess(keras.ops.convert_to_tensor(pixels)))
    reference = keras.applications.resnet50.preprocess_input(pixels.copy())
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_the_engine_ranks_the_models_own_scores_after_preprocessing(untrained):
    import keras

    from ec2_worker.engine import InferenceEngine

    # GIVEN the engine over the graph, and two images
    engine = InferenceEngine(untrained, top_k=3)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    # WHEN it classifies them as one batch
    top = engine.predict(pixels)
    # THEN each image's top 3 are the model's own best scores, labelled from ImageNet
    scores = untrained.model(keras.applications.resnet50.preprocess_input(pixels.copy()))
    scores = np.asarray(scores)
    for row, predictions in zip(scores, top, strict=True):
        best = np.argsort(-row)[:3]
        assert [p.wnid for p in predictions] == [untrained.labels[i][0] for i in best]
        assert [p.label for p in predictions] == [untrained.labels[i][1] for i in best]
        np.testing.assert_allclose([p.score for p in predictions], row[best], rtol=1e-4)
