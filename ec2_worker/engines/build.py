"""The worker's engine, built once at start from ``SKYCLASS_ENGINE`` and
``SKYCLASS_PRECISION``, with a report of what was chosen, why, and how long it took.

- ``tensorflow``, or any choice on a machine with a GPU: TensorFlow's engine, as before.
  On a GPU TensorFlow runs the model there; OpenVINO and ONNX Runtime would run it on
  the CPU here (ONNX Runtime's CUDA provider is another build of the package), so
  ``auto`` keeps TensorFlow.
- ``openvino``/``onnxruntime``: that engine on the model's conversion (made now if the
  cache has none), if it agrees with TensorFlow on this machine.
- ``auto``: what the machine record says was fastest here (measured now if there is
  none, which takes TensorFlow and some seconds per engine; the AMI bake does it ahead).

Whenever the asked engine cannot run (package missing, conversion failed, disagreement,
an error loading it), the log says why and TensorFlow runs. A missing model is not such
a case: it raises ModelUnavailableError, as TensorFlow's engine would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ec2_worker.engine import InferenceEngine, cpu_bf16_unsupported_reason
from ec2_worker.engines import AUTO, TENSORFLOW, records
from ec2_worker.engines.agreement import Agreement
from ec2_worker.engines.prepare import Engine, Preparation
from ec2_worker.engines.source import ModelSource
from ec2_worker.model import load_classifier
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

_CPUINFO = Path("/proc/cpuinfo")


@dataclass
class EngineReport:
    """What runs and why, for the log, ``/fleet`` and the metrics."""

    asked: str  # SKYCLASS_ENGINE
    engine: str  # what runs
    precision: str  # what it computes in
    reason: str
    startup: dict[str, float] = field(default_factory=dict)  # seconds per step
    measured: dict[str, Any] = field(default_factory=dict)  # the machine record's engines

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.startup.items())
        return (f"engine {self.engine} {self.precision} (asked: {self.asked}; {self.reason}); "
                f"start-up {steps}")


def build_engine(settings: Settings, *, gpu: bool, batch_sizes: Iterable[int],
                 cpuinfo: Path = _CPUINFO) -> tuple[Engine, EngineReport]:
    """The engine for ``settings``, warmed up at ``batch_sizes``, and its report."""
    sizes = sorted(set(batch_sizes))
    asked = settings.engine
    if asked == TENSORFLOW:
        return _tensorflow(settings, settings.precision, gpu, sizes,
                           EngineReport(asked, TENSORFLOW, settings.precision, "as asked"))
    if gpu:
        report = EngineReport(asked, TENSORFLOW, settings.precision,
                              "this machine has a GPU, where TensorFlow runs the model")
        if asked != AUTO:
            log.warning("%s asked for, but %s: running TensorFlow", asked, report.reason)
        return _tensorflow(settings, settings.precision, gpu, sizes, report)

    source = ModelSource.from_settings(settings)  # a missing model stops the worker here
    report = EngineReport(asked, TENSORFLOW, settings.precision, "")
    try:
        return _chosen(settings, source, sizes, cpuinfo, report)
    except Exception as exc:  # anything but the model itself: the fallback runs
        log.warning("%s: cannot use it (%s: %s): running TensorFlow",
                    asked, type(exc).__name__, exc)
        report.engine, report.precision = TENSORFLOW, settings.precision
        report.reason = f"{asked} failed: {exc}"
        return _tensorflow(settings, settings.precision, gpu, sizes, report)


def forget_measurement(settings: Settings, batch_sizes: Iterable[int],
                       cpuinfo: Path = _CPUINFO) -> None:
    """Remove what was measured for this model, precision and batch sizes on this kind
    of machine, so that the next ``auto`` start measures again."""
    source = ModelSource.from_settings(settings)
    cache = records.EngineCache(source.cache_dir(source.digest()))
    cache.path(_record_name(settings, sorted(set(batch_sizes)), cpuinfo)).unlink(missing_ok=True)


def _record_name(settings: Settings, sizes: list[int], cpuinfo: Path) -> str:
    cpu = records.cpu_description(_read(cpuinfo))
    return records.machine_record_name(records.machine_key(cpu, settings.precision, sizes))


def _read(cpuinfo: Path) -> str:
    return cpuinfo.read_text() if cpuinfo.is_file() else ""


def _chosen(settings: Settings, source: ModelSource, sizes: list[int], cpuinfo: Path,
            report: EngineReport) -> tuple[Engine, EngineReport]:
    asked = settings.engine
    clock = time.perf_counter()
    cache = records.EngineCache(source.cache_dir(source.digest()))
    report.startup["hash"] = time.perf_counter() - clock
    bf16_missing = cpu_bf16_unsupported_reason(_read(cpuinfo))
    cpu = records.cpu_description(_read(cpuinfo))
    name = _record_name(settings, sizes, cpuinfo)
    preparation = Preparation(settings, source, cache, bf16_missing)
    built: dict[str, Engine] = {}

    record = cache.read(name) or {}
    if not _answers(record, asked):
        with cache.locked():
            record = cache.read(name) or {}
            if not _answers(record, asked):
                clock = time.perf_counter()
                record, built = _prepare(preparation, record, asked, settings.precision, sizes)
                record.update(cpu=cpu, precision=settings.precision, batch_sizes=sizes)
                cache.write(name, record)
                report.startup["prepare"] = time.perf_counter() - clock

    engine_name, precision, reason = _decision(record, asked, settings.precision)
    report.engine, report.precision, report.reason = engine_name, precision, reason
    report.measured = record.get("engines", {})
    if engine_name == TENSORFLOW:
        if asked != AUTO:
            log.warning("%s: running TensorFlow", reason)
        engine = built.get(TENSORFLOW)
        if engine is not None and engine.precision == precision:
            _warm(engine, sizes, report)
            return engine, report
        return _tensorflow(settings, precision, False, sizes, report)

    engine = built.get(engine_name)
    if engine is None:
        clock = time.perf_counter()
        engine = preparation.load(engine_name, cache.read(records.CONVERSION) or {}, precision)
        report.startup["load"] = time.perf_counter() - clock
    _warm(engine, sizes, report)
    return engine, report


def _prepare(preparation: Preparation, record: dict[str, Any], asked: str, precision: str,
             sizes: list[int]) -> tuple[dict[str, Any], dict[str, Engine]]:
    if asked == AUTO:
        found, built = preparation.measure_all(sizes, precision)
        engines = {**record.get("engines", {}), **found["engines"]}
        return {**record, **found, "engines": engines}, built
    conversion = preparation.conversion([asked])
    entry, engine = preparation.check(asked, conversion, precision)
    engines = {**record.get("engines", {}), asked: entry}
    return {**record, "engines": engines}, ({asked: engine} if engine else {})


def _answers(record: dict[str, Any], asked: str) -> bool:
    """Whether the machine record already says what to run for ``asked``."""
    if asked == AUTO:
        return "choice" in record
    return asked in record.get("engines", {})


def _decision(record: dict[str, Any], asked: str, precision: str) -> tuple[str, str, str]:
    """(engine, precision, reason) from a machine record that answers ``asked``."""
    if asked == AUTO:
        chosen = record["choice"]
        return chosen["engine"], chosen["precision"], f"auto, {chosen['reason']}"
    entry = record["engines"][asked]
    if "error" in entry:
        return TENSORFLOW, precision, f"{asked} cannot run: {entry['error']}"
    found = Agreement.from_json(entry["agreement"])
    return asked, entry["precision"], f"as asked; it {found.describe()}"


def _tensorflow(settings: Settings, precision: str, gpu: bool, sizes: list[int],
                report: EngineReport) -> tuple[Engine, EngineReport]:
    clock = time.perf_counter()
    engine = InferenceEngine(load_classifier(settings), settings.top_k, precision, gpu=gpu)
    report.startup["load"] = time.perf_counter() - clock
    report.engine, report.precision = TENSORFLOW, engine.precision
    _warm(engine, sizes, report)
    return engine, report


def _warm(engine: Engine, sizes: list[int], report: EngineReport) -> None:
    clock = time.perf_counter()
    engine.warm_up(sizes)
    report.startup["warm_up"] = time.perf_counter() - clock

