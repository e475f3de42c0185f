"""The worker's engines on the tests' tiny model, for tests that run each of them.

``engine_for`` builds an engine as the worker does (``build_engine``), so a peer engine
runs the model's real conversion, cached next to the model: within a session the tiny
model is converted once per engine, whichever test asks first. A test asking for an
engine whose package is not installed is skipped with that reason; an engine that is
installed but did not come up (conversion failed, disagreement) fails the test rather
than letting TensorFlow stand in for it unnoticed.
"""

from __future__ import annotations

import pytest

from ec2_worker.engine import FP32
from ec2_worker.engines import PEERS, TENSORFLOW
from testbed.tiny_model import TinyModel

ENGINES = (TENSORFLOW, *PEERS)


def engine_for(tiny: TinyModel, name: str, precision: str = FP32, top_k: int = 5,
               batch_sizes: tuple[int, ...] = (1,)):
    from ec2_worker.engines.build import build_engine
    from ec2_worker.engines.runtimes import missing_package
    from skyclass.runtime.settings import Settings

    if name != TENSORFLOW and missing_package(name):
        pytest.skip(f"engine {name}: {missing_package(name)}")
    settings = Settings.from_env({}, model=str(tiny.model_path), labels=str(tiny.labels_path),
                                 engine=name, precision=precision, top_k=top_k)
    engine, report = build_engine(settings, gpu=False, batch_sizes=batch_sizes)
    assert report.engine == name, report.reason
    return engine
