"""The model a worker serves, loaded once per process: ResNet-50 with ImageNet weights
(the default, ``SKYCLASS_MODEL=resnet50``) or a custom ``.keras`` model with a labels file.

A ``Classifier`` bundles what the engine needs: the Keras model, its input size, its
labels and its preprocessing. ResNet-50 gets Keras' ``resnet50.preprocess_input``;
custom models get RGB float32 pixels in [0, 255] as they are and normalise them
themselves (ARCHITECTURE.md, "Models and weights"), and must end in a softmax.

The ImageNet weights are never downloaded here: the AMI bake and ``skyclass up`` put
them in the Keras cache (``$KERAS_HOME/models``, see ec2_worker/weights.py), and a
worker that cannot find them refuses to start and names the file. It never falls back
to random weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from skyclass.runtime.errors import ModelUnavailableError
from skyclass.runtime.settings import Settings

RESNET50 = "resnet50"
RESNET50_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
RESNET50_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    + RESNET50_WEIGHTS_FILE
)
RESNET50_INPUT_SIZE = (224, 224)

Label = tuple[str | None, str]  # (ImageNet wnid or None, human-readable name)


@dataclass(frozen=True)
class Classifier:
    name: str
    model: Any  # keras.Model
    input_size: tuple[int, int]  # (height, width)
    labels: list[Label]
    preprocess: Callable[[Any], Any]  # batch of RGB [0, 255] -> what the model takes


def load_classifier(settings: Settings) -> Classifier:
    """The classifier ``settings.model`` names. Raises ModelUnavailableError with the
    reason (missing weights, model or labels file; labels that do not fit the model)."""
    if settings.model == RESNET50:
        return resnet50_classifier(require_resnet50_weights())
    return custom_classifier(Path(settings.model), settings.labels)


def require_resnet50_weights() -> Path:
    """The ImageNet weights file, or ModelUnavailableError naming where it should be."""
    weights = resnet50_weights_path()
    if not weights.is_file():
        raise ModelUnavailableError(
            f"ResNet-50 ImageNet weights not found: {weights} does not exist. Workers "
            f"do not download them (the AMI bake and `skyclass up` do): run "
            f"`python -m ec2_worker.weights`, or copy {RESNET50_WEIGHTS_URL} to that path"
        )
    return weights


def resnet50_weights_path() -> Path:
    """Where Keras caches the ImageNet weights: ``$KERAS_HOME/models`` (``~/.keras``
    by default), read now rather than when Keras was imported."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / RESNET50_WEIGHTS_FILE


def resnet50_classifier(weights: Path | None) -> Classifier:
    """ResNet-50 with the weights in ``weights``. ``None`` builds the untrained graph,
    named so, for tests of shapes and preprocessing; ``load_classifier`` never does."""
    import keras

    try:
        model = keras.applications.ResNet50(
            weights=str(weights) if weights is not None else None, classes=1000
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot load ResNet-50 weights from {weights}: {exc}") from exc
    return Classifier(
        name=RESNET50 if weights is not None else f"{RESNET50}-untrained",
        model=model,
        input_size=RESNET50_INPUT_SIZE,
        labels=imagenet_labels(),
        preprocess=keras.applications.resnet50.preprocess_input,
    )


def imagenet_labels() -> list[Label]:
    """The 1000 ImageNet classes in output order, from Keras' class index file."""
    index_file = resources.files("skyclass.runtime").joinpath("data/imagenet_class_index.json")
    text = index_file.read_text()
    index = json.loads(text)
    return [(index[str(i)][0], index[str(i)][1]) for i in range(len(index))]


def custom_classifier(model_path: Path, labels_path: str | None) -> Classifier:
    """A ``.keras`` model whose outputs are named, in order, by a labels file."""
    import keras

    labels = require_custom_model(model_path, labels_path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # any failure here means "this is not a usable model"
        raise ModelUnavailableError(f"cannot load model {model_path}: {exc}") from exc

    _, height, width, channels = model.input_shape
    if not (height and width) or channels != 3:
        raise ModelUnavailableError(
            f"model {model_path} must take RGB images of a fixed size, "
            f"not input shape {model.input_shape}"
        )
    outputs = model.output_shape[-1]
    if outputs != len(labels):
        raise ModelUnavailableError(
            f"labels file {labels_path} has {len(labels)} labels but model {model_path} "
            f"has {outputs} outputs"
        )
    return Classifier(
        name=model_path.name,
        model=model,
        input_size=(int(height), int(width)),
        labels=[(None, label) for label in labels],
        preprocess=_as_is,
    )


def require_custom_model(model_path: Path, labels_path: str | None) -> list[str]:
    """The labels of a custom model, once its model and labels files are known to be
    there; ModelUnavailableError with the reason otherwise. Loads no model."""
    if not model_path.is_file():
        raise ModelUnavailableError(
            f"model file {model_path} does not exist (SKYCLASS_MODEL is 'resnet50' or a "
            f"path to a .keras model)"
        )
    if not labels_path:
        raise ModelUnavailableError(
            f"model {model_path} needs a labels file: set SKYCLASS_LABELS to a file with "
            f"one label per line, in the model's output order"
        )
    return read_labels(Path(labels_path))


def read_labels(path: Path) -> list[str]:
    """One label per line; blank lines and surrounding spaces ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelUnavailableError(f"cannot read labels file {path}: {exc}") from exc
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ModelUnavailableError(f"labels file {path} has no labels")
    return labels


def _as_is(pixels: Any) -> Any:
    return pixels
