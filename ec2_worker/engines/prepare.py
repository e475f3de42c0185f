"""The work done once per model (conversion, needs TensorFlow) and once per machine
(agreement, and for ``auto`` the measurement), recorded in the model's engine cache
(``records``) so that later starts only read it.

``Preparation`` is handed the model, its cache and this machine's description, and does
each step only if the cache lacks it; the caller holds the cache's lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ec2_worker.engine import BF16, FP32, TENSORFLOW, InferenceEngine
from ec2_worker.engines import PEERS, agreement, choice, convert, records
from ec2_worker.engines.runtimes import LOADERS, ConvertedEngine, missing_package
from ec2_worker.engines.source import ModelSource
from ec2_worker.model import Classifier, load_classifier
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

Engine = InferenceEngine | ConvertedEngine


class Preparation:
    def __init__(self, settings: Settings, source: ModelSource, cache: records.EngineCache,
                 bf16_missing: str | None) -> None:
        self.settings = settings
        self.source = source
        self.cache = cache
        self.bf16_missing = bf16_missing
        self._classifier: Classifier | None = None
        self._tensorflow: dict[str, InferenceEngine] = {}

    # -- once per model: needs TensorFlow ------------------------------------------------

    def conversion(self, engines: Iterable[str]) -> dict[str, Any]:
        """The cache's conversion record, with a conversion of each of ``engines`` made
        (or its error recorded) where the cache has none by the installed versions."""
        record = self.cache.read(records.CONVERSION)
        reference = self.cache.read_array(records.REFERENCE)
        if (record is None or reference is None
                or record.get("tensorflow") != records.version("tensorflow")):
            classifier = self.classifier()
            engine = self.tensorflow(FP32)
            inputs = agreement.fixed_inputs(classifier.input_size)
            self.cache.write_array(records.INPUTS, inputs)
            self.cache.write_array(records.REFERENCE, engine.scores(inputs))
            record = {"model": self.source.name, "input_size": list(classifier.input_size),
                      "classes": len(classifier.labels),
                      "tensorflow": records.version("tensorflow"), "engines": {}}
        for name in engines:
            made = record["engines"].get(name, {})
            if made.get("versions") == _versions(name) or missing_package(name):
                continue
            record["engines"][name] = self._convert(name)
            self.cache.write(records.CONVERSION, record)
        self.cache.write(records.CONVERSION, record)
        return record

    def _convert(self, name: str) -> dict[str, Any]:
        frozen = self.tensorflow(FP32).frozen
        start = time.perf_counter()
        try:
            path = convert.CONVERTERS[name](frozen, self.cache.path(name))
        except Exception as exc:  # a converter's failure, whatever its kind, means TF runs
            log.warning("%s: cannot convert %s: %s", name, self.source.name, exc)
            return {"error": f"conversion failed: {exc}", "versions": _versions(name)}
        seconds = time.perf_counter() - start
        log.info("%s: converted %s in %.1f s", name, self.source.name, seconds)
        return {"file": str(path.relative_to(self.cache.directory)), "seconds": seconds,
                "versions": _versions(name)}

    def classifier(self) -> Classifier:
        if self._classifier is None:
            self._classifier = load_classifier(self.settings)
        return self._classifier

    def tensorflow(self, precision: str) -> InferenceEngine:
        """TensorFlow's engine in ``precision`` on the CPU (built once)."""
        if precision not in self._tensorflow:
            self._tensorflow[precision] = InferenceEngine(
                self.classifier(), self.settings.top_k, precision, gpu=False)
        return self._tensorflow[precision]

    # -- once per machine: TensorFlow only to measure it ---------------------------------

    def check(self, name: str, conversion: dict[str, Any], precision: str
              ) -> tuple[dict[str, Any], ConvertedEngine | None]:
        """``name``'s entry for the machine record: the precision it runs in and its
        agreement, or why it cannot run; and the engine, when it agrees. In bf16 an
        engine that disagrees is tried again in fp32."""
        why = missing_package(name)
        made = conversion["engines"].get(name, {})
        if why or "error" in made:
            return {"error": why or made["error"]}, None
        inputs = self.cache.read_array(records.INPUTS)
        reference = self.cache.read_array(records.REFERENCE)
        entry: dict[str, Any] = {}
        for attempt in dict.fromkeys([precision, FP32]):
            try:
                engine = self.load(name, conversion, attempt)
                found = agreement.compare(reference, _as_it_runs(engine, inputs),
                                          engine.precision)
            except Exception as exc:  # a runtime that cannot load or run it: TF runs
                log.warning("%s: cannot run the converted %s: %s", name, self.source.name, exc)
                return {"error": f"cannot run the conversion: {exc}"}, None
            log.info("%s %s: %s", name, engine.precision, found.describe())
            if found.passed:
                return {**entry, "precision": engine.precision,
                        "agreement": found.as_json()}, engine
            entry[f"{engine.precision}_agreement"] = found.as_json()
            if engine.precision == FP32:
                break
        return {**entry, "error": found.describe()}, None

    def load(self, name: str, conversion: dict[str, Any], precision: str) -> ConvertedEngine:
        height, width = conversion["input_size"]
        classifier = self.source.classifier((height, width))
        if len(classifier.labels) != conversion["classes"]:
            raise ValueError(f"{len(classifier.labels)} labels for "
                             f"{conversion['classes']} outputs")
        path = self.cache.path(conversion["engines"][name]["file"])
        return LOADERS[name](classifier, self.settings.top_k, path, precision,
                             bf16_missing=self.bf16_missing)

    def check_tensorflow(self, precision: str) -> tuple[dict[str, Any], InferenceEngine]:
        """TensorFlow's entry: bf16 (its oneDNN rewrite) only where it agrees with its own
        fp32 graph by the same rule; else fp32, the reference itself."""
        if precision == BF16:
            engine = self.tensorflow(BF16)
            if engine.precision == BF16:
                found = agreement.compare(
                    self.cache.read_array(records.REFERENCE),
                    _as_it_runs(engine, self.cache.read_array(records.INPUTS)), BF16)
                log.info("tensorflow bf16: %s", found.describe())
                if found.passed:
                    return {"precision": BF16, "agreement": found.as_json()}, engine
                return ({"precision": FP32, "bf16_agreement": found.as_json()},
                        self.tensorflow(FP32))
        return {"precision": FP32}, self.tensorflow(FP32)

    def measure_all(self, batch_sizes: Iterable[int], precision: str
                    ) -> tuple[dict[str, Any], dict[str, Engine]]:
        """The machine record for ``auto``: every engine checked, those that agree
        measured side by side, and the choice."""
        conversion = self.conversion(PEERS)
        entries: dict[str, dict[str, Any]] = {}
        engines: dict[str, Engine] = {}
        entries[TENSORFLOW], engines[TENSORFLOW] = self.check_tensorflow(precision)
        for name in PEERS:
            entry, engine = self.check(name, conversion, precision)
            entries[name] = entry
            if engine is not None:
                engines[name] = engine
        sizes = sorted(set(batch_sizes))
        for engine in engines.values():
            engine.warm_up(sizes)
        rates = choice.measure({name: engine.scores for name, engine in engines.items()},
                               sizes, self.classifier().input_size)
        for name, by_size in rates.items():
            entries[name]["rates"] = {str(size): rate for size, rate in by_size.items()}
        chosen, reason = choice.choose(rates)
        return ({"engines": entries,
                 "choice": {"engine": chosen, "precision": entries[chosen]["precision"],
                            "reason": reason}},
                engines)


def _versions(name: str) -> dict[str, str | None]:
    packages = ("tensorflow", "tf2onnx", "onnxruntime") if name == "onnxruntime" else (
        "tensorflow", name)
    return {package: records.version(package) for package in packages}


def _as_it_runs(engine: Engine, inputs: np.ndarray) -> list[np.ndarray]:
    """``engine``'s scores for ``inputs`` as one batch and one at a time."""
    alone = np.concatenate([engine.scores(inputs[i:i + 1]) for i in range(len(inputs))])
    return [engine.scores(inputs), alone]
