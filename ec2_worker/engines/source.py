"""Which model a worker serves, known without loading it: its name, the file whose bytes
define it, its labels, and where its conversions are cached.

The cache key is a hash of that file (the ``.keras`` model, or the ResNet-50 weights)
together with the preprocessing the engine bakes into the graph, so a changed model is
converted again and a copied one is not. The cache lives next to the model
(``skyclass-engines/<hash>/`` in the model's folder: the AMI bake fills it for the
default model), or under ``~/.cache/skyclass/engines`` where that folder is read-only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ec2_worker.model import (
    RESNET50,
    Classifier,
    Label,
    imagenet_labels,
    read_labels,
    require_custom_model,
    require_resnet50_weights,
)
from skyclass.runtime.settings import Settings

CACHE_FOLDER = "skyclass-engines"
# Changes whenever what a conversion holds changes, so old caches are not reused.
CACHE_FORMAT = "1"


@dataclass(frozen=True)
class ModelSource:
    name: str  # what results carry as "model", as the Classifier names it
    kind: str  # RESNET50 (Keras' ResNet-50 + its preprocessing) or "keras" (as it is)
    path: Path  # the file whose bytes define the model
    labels_path: Path | None  # a custom model's labels file

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelSource:
        """The model ``settings`` names; ModelUnavailableError as ``load_classifier``
        raises it when a file is missing."""
        if settings.model == RESNET50:
            return cls(RESNET50, RESNET50, require_resnet50_weights(), None)
        path = Path(settings.model)
        require_custom_model(path, settings.labels)
        return cls(path.name, "keras", path, Path(settings.labels or ""))

    def labels(self) -> list[Label]:
        if self.kind == RESNET50:
            return imagenet_labels()
        return [(None, label) for label in read_labels(self.labels_path or Path())]

    def digest(self) -> str:
        """sha256 of the cache format, the kind and the model file's bytes."""
        sha = hashlib.sha256(f"{CACHE_FORMAT}:{self.kind}:".encode())
        with self.path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    def cache_dir(self, digest: str) -> Path:
        beside = self.path.parent / CACHE_FOLDER
        if beside.is_dir() or os.access(self.path.parent, os.W_OK):
            return beside / digest[:16]
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return home / "skyclass" / "engines" / digest[:16]

    def classifier(self, input_size: tuple[int, int]) -> Classifier:
        """What the worker needs of the model when a converted engine runs it: name,
        input size and labels. The converted graph holds the model and its
        preprocessing, so there is no Keras model here and nothing to preprocess."""
        return Classifier(name=self.name, model=None, input_size=input_size,
                          labels=self.labels(), preprocess=_in_the_graph)


def _in_the_graph(pixels):
    raise TypeError("a converted model preprocesses inside its own graph")
