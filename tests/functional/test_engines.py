"""The engines on the tests' trained tiny model: each converted engine answers as
TensorFlow does on held-out images, ``auto`` records its choice and a later start runs
it without TensorFlow, and whatever goes wrong with a peer, TensorFlow runs and the
report says why. Timing is faked where a choice depends on it (measuring is the bench's
job), so these tests do not depend on this machine's speed.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ec2_worker.engine import BF16, FP32
from ec2_worker.engines import AUTO, ONNXRUNTIME, OPENVINO, PEERS, TENSORFLOW
from ec2_worker.engines.agreement import compare
from ec2_worker.engines.runtimes import cpu_bf16_reason, missing_package
from testbed.tiny_model import CLASSES, INPUT_SIZE, TinyModel
from tests.support.engines import engine_for
from tests.support.images import held_out_pixels
from tests.support.paths import REPO_ROOT

HELD_OUT = 300


@pytest.fixture(scope="module")
def held_out():
    return held_out_pixels(HELD_OUT, first=2000)


@pytest.fixture
def fresh_model(tiny_model, tmp_path) -> TinyModel:
    """The trained tiny model in a folder of its own: an empty engine cache."""
    shutil.copy(tiny_model.model_path, tmp_path / "model.keras")
    shutil.copy(tiny_model.labels_path, tmp_path / "labels.txt")
    return TinyModel(tmp_path / "model.keras", tmp_path / "labels.txt", list(CLASSES),
                     INPUT_SIZE)


def settings_for(model: TinyModel, engine: str, precision: str = FP32):
    from skyclass.runtime.settings import Settings

    return Settings.from_env({}, model=str(model.model_path), labels=str(model.labels_path),
                             engine=engine, precision=precision, top_k=3)


def build(model: TinyModel, engine: str, precision: str = FP32, gpu: bool = False):
    from ec2_worker.engines.build import build_engine

    return build_engine(settings_for(model, engine, precision), gpu=gpu, batch_sizes={1, 8})


def fake_timing(fastest: str):
    """Stands in for ``choice.measure``: ``fastest`` twice TensorFlow's speed, any other
    engine 1.2x, at every batch size."""
    def measure(runs, batch_sizes, input_size, **_):
        speed = {TENSORFLOW: 1.0, fastest: 2.0}
        return {name: {size: 10.0 * size * speed.get(name, 1.2) for size in batch_sizes}
                for name in runs}
    return measure


@pytest.mark.parametrize("name", PEERS)
def test_each_engine_gives_tensorflows_label_on_every_held_out_image(tiny_model, held_out, name):
    # GIVEN the trained tiny model run by TensorFlow and by a converted engine
    tensorflow = engine_for(tiny_model, TENSORFLOW)
    peer = engine_for(tiny_model, name)
    # WHEN both score the same 300 held-out images
    found = compare(tensorflow.scores(held_out), peer.scores(held_out), FP32)
    # THEN the top label is the same on every one, and the scores within fp32's tolerance
    assert (found.same_top1, found.passed) == (HELD_OUT, True), found.describe()
    # AND those labels are the shapes pictured
    truth = [CLASSES[i % len(CLASSES)] for i in range(HELD_OUT)]
    assert [top[0].label for top in peer.predict(held_out)] == truth


@pytest.mark.skipif(cpu_bf16_reason() is not None or missing_package(OPENVINO) is not None,
                    reason=f"needs native bfloat16 and openvino: {cpu_bf16_reason()}, "
                           f"{missing_package(OPENVINO)}")
def test_openvino_in_bf16_gives_tensorflows_label_on_every_held_out_image(tiny_model, held_out):
    tensorflow = engine_for(tiny_model, TENSORFLOW)
    bf16 = engine_for(tiny_model, OPENVINO, precision=BF16)
    assert bf16.precision == BF16
    found = compare(tensorflow.scores(held_out), bf16.scores(held_out), BF16)
    assert (found.same_top1, found.passed) == (HELD_OUT, True), found.describe()


def test_asked_for_bf16_where_it_cannot_compute_it_each_engine_says_so_and_runs_fp32(
        tiny_model, tmp_path, caplog):
    from ec2_worker.engines import convert, runtimes

    for name in PEERS:
        if missing_package(name):
            pytest.skip(f"engine {name}: {missing_package(name)}")
    # GIVEN the tiny model converted for both engines
    frozen = engine_for(tiny_model, TENSORFLOW).frozen
    classifier = engine_for(tiny_model, TENSORFLOW).classifier
    paths = {name: convert.CONVERTERS[name](frozen, tmp_path / name) for name in PEERS}
    # WHEN OpenVINO is asked for bf16 on a CPU without it, and ONNX Runtime on any CPU
    with caplog.at_level(logging.WARNING):
        openvino = runtimes.openvino_engine(
            classifier, 3, paths[OPENVINO], BF16,
            bf16_missing="this CPU has no native bfloat16 (neither AVX-512-BF16 nor AMX)")
        onnxruntime = runtimes.onnxruntime_engine(classifier, 3, paths[ONNXRUNTIME], BF16)
    # THEN both run fp32 and the log says why
    assert (openvino.precision, onnxruntime.precision) == (FP32, FP32)
    assert "openvino: precision bf16 asked for, but this CPU has no native bfloat16" in caplog.text
    assert "onnxruntime: precision bf16 asked for, but its CPU provider" in caplog.text


def test_auto_records_its_choice_and_a_later_start_runs_it_without_tensorflow(
        fresh_model, monkeypatch):
    from ec2_worker.engines import choice

    if missing_package(ONNXRUNTIME):
        pytest.skip(f"engine onnxruntime: {missing_package(ONNXRUNTIME)}")
    # GIVEN a machine where ONNX Runtime measures fastest
    monkeypatch.setattr(choice, "measure", fake_timing(ONNXRUNTIME))
    # WHEN a worker starts with auto and an empty cache
    engine, report = build(fresh_model, AUTO)
    # THEN it converted, checked and measured, chose ONNX Runtime, and says why
    assert (report.engine, engine.name, report.precision) == (ONNXRUNTIME, ONNXRUNTIME, FP32)
    assert "prepare" in report.startup
    assert report.reason.startswith("auto, the fastest: onnxruntime 2.00x TensorFlow")
    assert report.measured[ONNXRUNTIME]["agreement"]["same_top1"] == 16

    # AND a later start in the same process reads the record instead of measuring
    again, later = build(fresh_model, AUTO)
    assert (later.engine, later.reason) == (ONNXRUNTIME, report.reason)
    assert "prepare" not in later.startup

    # AND a new worker process runs it without importing TensorFlow
    probe = subprocess.run([sys.executable, "-c", (
        "import json, sys\n"
        "from ec2_worker.engines.build import build_engine\n"
        "from skyclass.runtime.settings import Settings\n"
        f"s = Settings.from_env({{}}, model={str(fresh_model.model_path)!r}, "
        f"labels={str(fresh_model.labels_path)!r}, engine='auto', top_k=3)\n"
        "engine, report = build_engine(s, gpu=False, batch_sizes={1, 8})\n"
        "print(json.dumps([report.engine, 'tensorflow' in sys.modules]))\n")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.splitlines()[-1]) == [ONNXRUNTIME, False]


def test_auto_keeps_tensorflow_where_no_engine_is_faster(fresh_model, monkeypatch):
    from ec2_worker.engines import choice

    # GIVEN a machine where every other engine measures slower than TensorFlow
    monkeypatch.setattr(choice, "measure", lambda runs, sizes, *_, **__: {
        name: {size: (100.0 if name == TENSORFLOW else 60.0) for size in sizes}
        for name in runs})
    # WHEN a worker starts with auto
    engine, report = build(fresh_model, AUTO)
    # THEN TensorFlow runs, and the reason gives the others' speeds
    assert (report.engine, engine.name) == (TENSORFLOW, TENSORFLOW)
    assert report.reason.startswith("auto, no engine was 1.05x TensorFlow or more")


def test_when_a_conversion_fails_the_worker_says_so_and_runs_tensorflow(
        fresh_model, monkeypatch, caplog, held_out):
    from ec2_worker.engines import convert

    def broken(frozen, directory):
        raise RuntimeError("unsupported operation FancyConv")

    # GIVEN a model OpenVINO cannot convert
    monkeypatch.setitem(convert.CONVERTERS, OPENVINO, broken)
    # WHEN a worker is asked to run OpenVINO
    with caplog.at_level(logging.WARNING):
        engine, report = build(fresh_model, OPENVINO)
    # THEN it runs TensorFlow, the log and the report say why, and it still classifies
    assert (report.engine, engine.name) == (TENSORFLOW, TENSORFLOW)
    assert "unsupported operation FancyConv" in report.reason
    assert "running TensorFlow" in caplog.text
    assert engine.predict(held_out[:3])[0][0].label == CLASSES[0]


def test_a_conversion_that_disagrees_with_tensorflow_is_not_used(fresh_model, monkeypatch):
    from ec2_worker.engines import choice, prepare

    if missing_package(ONNXRUNTIME):
        pytest.skip(f"engine onnxruntime: {missing_package(ONNXRUNTIME)}")
    real = prepare.LOADERS[ONNXRUNTIME]

    def swapped_classes(*args, **kwargs):
        engine = real(*args, **kwargs)
        run = engine._run
        engine._run = lambda pixels: run(pixels)[:, ::-1]  # a mislaid output layout
        return engine

    # GIVEN an ONNX conversion whose outputs come out in the wrong order
    monkeypatch.setitem(prepare.LOADERS, ONNXRUNTIME, swapped_classes)
    monkeypatch.setattr(choice, "measure", fake_timing(ONNXRUNTIME))
    # WHEN a worker is asked for it, and another for auto
    engine, asked = build(fresh_model, ONNXRUNTIME)
    _, automatic = build(fresh_model, AUTO)
    # THEN neither runs it: TensorFlow does, and the reason is the disagreement
    assert (asked.engine, engine.name) == (TENSORFLOW, TENSORFLOW)
    assert asked.reason.startswith("onnxruntime cannot run: DISAGREES with TensorFlow: top-1 ")
    assert automatic.engine != ONNXRUNTIME
    assert "error" in automatic.measured[ONNXRUNTIME]


def test_an_engine_whose_package_is_missing_is_left_out(fresh_model, monkeypatch):
    from ec2_worker.engines import choice, prepare

    # GIVEN a machine without openvino, where it would otherwise measure fastest
    monkeypatch.setattr(prepare, "missing_package", lambda name: (
        "openvino is not installed" if name == OPENVINO else missing_package(name)))
    monkeypatch.setattr(choice, "measure", fake_timing(OPENVINO))
    # WHEN a worker starts with auto
    _, report = build(fresh_model, AUTO)
    # THEN openvino was neither converted nor chosen, and the record says why
    assert report.engine != OPENVINO
    assert report.measured[OPENVINO] == {"error": "openvino is not installed"}


def test_on_a_machine_with_a_gpu_auto_keeps_tensorflow(fresh_model):
    _, report = build(fresh_model, AUTO, gpu=True)
    assert report.engine == TENSORFLOW
    assert report.reason == "this machine has a GPU, where TensorFlow runs the model"


def test_the_worker_publishes_its_engine_for_the_fleet_and_the_metrics(aws, stage, settings):
    from ec2_worker.engines.build import EngineReport
    from ec2_worker.engines.report import ENGINE_READY, publish
    from skyclass.runtime.contracts import worker_status_key
    from skyclass.runtime.metrics import NAMESPACE

    # GIVEN a worker that chose OpenVINO after measuring it 1.5x TensorFlow
    report = EngineReport(AUTO, OPENVINO, FP32, "auto, the fastest: openvino 1.50x ...",
                          startup={"load": 0.4, "warm_up": 1.1},
                          measured={TENSORFLOW: {"rates": {"1": 20.0, "32": 40.0}},
                                    OPENVINO: {"rates": {"1": 30.0, "32": 60.0}}})
    bucket = stage.resources.output_bucket
    # WHEN it publishes what it runs
    publish(report, s3=aws.s3, bucket=bucket, cloudwatch=aws.cloudwatch,
            stage=settings.stage, worker_id="i-0abc", model="resnet50", ready_seconds=2.5)
    # THEN /fleet can read the engine, its precision and why, beside the instance id
    status = json.loads(aws.s3.get_object(Bucket=bucket, Key=worker_status_key("i-0abc"))["Body"]
                        .read())
    assert (status["worker"], status["engine"], status["precision"]) == ("i-0abc", OPENVINO, FP32)
    assert status["reason"].startswith("auto, the fastest: openvino")
    assert (status["speedup"], status["ready_s"]) == (1.5, 2.5)
    # AND the metrics can be split by engine
    now = datetime.now(UTC)
    ready = aws.cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=ENGINE_READY,
        Dimensions=[{"Name": "Stage", "Value": settings.stage},
                    {"Name": "Engine", "Value": OPENVINO},
                    {"Name": "Precision", "Value": FP32}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1),
        Period=600, Statistics=["Maximum"])
    assert [point["Maximum"] for point in ready["Datapoints"]] == [2.5]


def test_a_worker_whose_role_may_not_write_its_status_still_starts(caplog):
    from botocore.exceptions import ClientError

    from ec2_worker.engines.build import EngineReport
    from ec2_worker.engines.report import publish

    class Denied:
        def __getattr__(self, name):
            def call(**_):
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, name)
            return call

    with caplog.at_level(logging.WARNING):
        publish(EngineReport(AUTO, TENSORFLOW, FP32, "x"), s3=Denied(), bucket="out",
                cloudwatch=Denied(), stage="dev", worker_id="i-1", model="m", ready_seconds=1)
    assert "cannot write the worker's status to s3://out/fleet/workers/i-1.json" in caplog.text
    assert "cannot publish the worker's engine metrics" in caplog.text


def test_the_bake_step_measures_afresh_and_prints_the_choice(fresh_model, monkeypatch, capsys):
    from ec2_worker.engines import choice
    from ec2_worker.engines.__main__ import main

    # GIVEN a machine where OpenVINO measures fastest, and a record from an earlier start
    # on this machine that kept TensorFlow
    if missing_package(OPENVINO):
        pytest.skip(f"engine openvino: {missing_package(OPENVINO)}")
    monkeypatch.setenv("SKYCLASS_MODEL", str(fresh_model.model_path))
    monkeypatch.setenv("SKYCLASS_LABELS", str(fresh_model.labels_path))
    monkeypatch.setattr(choice, "measure", fake_timing(TENSORFLOW))
    main(["--precisions", FP32, "--batch-sizes", "1,32"])
    monkeypatch.setattr(choice, "measure", fake_timing(OPENVINO))
    # WHEN the bake step runs
    assert main(["--precisions", FP32, "--batch-sizes", "1,32"]) == 0
    # THEN it measured again, and says what auto chose and why
    printed = capsys.readouterr().out
    assert "fp32: engine openvino fp32 (asked: auto; auto, the fastest: openvino 2.00x" in printed
