"""The local runner with real child processes standing in for ``ec2_worker``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from skyclass.operations.local.runner import InstanceRunner, LocalWorkerSpawner
from testbed.waiting import eventually

# A worker stand-in: says who it is, then runs until SIGTERM and says so on the way out.
FAKE_WORKER = """
import os, signal, sys, time
print("worker", os.environ["SKYCLASS_WORKER_ID"], "queue", os.environ["SKYCLASS_QUEUE_URL"],
      flush=True)
signal.signal(signal.SIGTERM, lambda *a: (print("finishing batch", flush=True), sys.exit(0)))
while True:
    time.sleep(0.05)
"""
CRASHING_WORKER = "import sys; print('crash: no model here', flush=True); sys.exit(3)"
# A worker stand-in that gets ready when told to (a file appears), as ec2_worker logs it.
SLOW_WORKER = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1]) / ("go-" + os.environ["SKYCLASS_WORKER_ID"])
while not go.exists():
    time.sleep(0.02)
print("INFO ec2_worker: worker", os.environ["SKYCLASS_WORKER_ID"], "ready: model x", flush=True)
time.sleep(60)
"""


def _runner(
    states: dict[str, str], code: str, log_dir: Path, reports: list[str] | None = None
) -> tuple[InstanceRunner, Path]:
    reports = [] if reports is None else reports
    spawner = LocalWorkerSpawner(
        {"SKYCLASS_QUEUE_URL": "http://q"}, log_dir, cwd=log_dir,
        argv=(sys.executable, "-c", code),
    )
    runner = InstanceRunner(lambda: dict(states), spawner, restart_delay=0.1, stop_grace=5.0,
                            report=reports.append, last_words=spawner.last_words)
    return runner, spawner.log_path("i-1")


def test_running_instance_gets_a_worker_that_stops_cleanly(tmp_path):
    # GIVEN a running instance
    states = {"i-1": "running"}
    runner, log = _runner(states, FAKE_WORKER, tmp_path)
    # WHEN the runner starts its worker
    runner.reconcile()
    worker = runner.workers()["i-1"]
    eventually(lambda: log.exists() and "worker i-1 queue http://q" in log.read_text(), 10,
               "the worker's first line")
    # AND the instance is stopped
    states["i-1"] = "stopped"
    runner.reconcile()
    eventually(lambda: worker.poll() is not None, 10, "the worker's exit")
    runner.reconcile()
    # THEN the worker had its instance id and the stage's settings, finished on SIGTERM
    assert "finishing batch" in log.read_text()
    assert worker.poll() == 0
    assert runner.workers() == {}


def test_workers_start_one_at_a_time_each_once_the_previous_one_is_ready(tmp_path):
    # GIVEN two running instances whose workers take a while to get ready
    states = {"i-1": "running", "i-2": "running"}
    spawner = LocalWorkerSpawner({}, tmp_path, cwd=tmp_path,
                                 argv=(sys.executable, "-c", SLOW_WORKER, str(tmp_path)))
    runner = InstanceRunner(lambda: dict(states), spawner, stop_grace=5.0,
                            report=lambda m: None)
    try:
        # WHEN the runner looks, for a while
        for _ in range(5):
            runner.reconcile()
            time.sleep(0.05)
        # THEN one worker runs
        first = runner.workers()["i-1"]
        assert set(runner.workers()) == {"i-1"} and not first.ready()
        # WHEN it logs that it is ready: THEN the second one starts
        (tmp_path / "go-i-1").touch()
        eventually(first.ready, 10, "the first worker ready")
        eventually(lambda: (runner.reconcile(), "i-2" in runner.workers())[1], 10,
                   "the second worker started")
    finally:
        states.clear()
        runner.shutdown(grace=1.0)


def test_crashing_worker_is_restarted_while_its_instance_runs(tmp_path):
    # GIVEN a running instance whose worker exits at once
    states = {"i-1": "running"}
    reports: list[str] = []
    runner, log = _runner(states, CRASHING_WORKER, tmp_path, reports)
    # WHEN the runner keeps watching for a while
    def restarted() -> bool:
        runner.reconcile()
        return log.exists() and log.read_text().count("crash") >= 2

    eventually(restarted, 10, "the worker restarted", period=0.05)
    # THEN the worker was started again, each run logged to the same file
    assert log.read_text().count("--- started") >= 2
    # AND the console was told why, in the worker's own words
    assert any("exited with code 3" in r and "crash: no model here" in r for r in reports)
    states.clear()
    runner.shutdown(grace=1.0)


SUPERVISOR = """
import sys, time
from pathlib import Path
from skyclass.operations.local.runner import LocalWorkerSpawner
folder = Path(sys.argv[1])
spawner = LocalWorkerSpawner({}, folder, cwd=folder,
                             argv=(sys.executable, "-c", "import time; time.sleep(60)"))
print(spawner("i-1").pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard is Linux's prctl")
def test_a_worker_does_not_outlive_a_supervisor_killed_outright(tmp_path):
    # GIVEN a supervisor process that started a worker
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
    worker = psutil.Process(int(supervisor.stdout.readline()))
    # WHEN the supervisor is killed without a chance to clean up
    supervisor.kill()
    supervisor.wait()
    # THEN the worker is gone too
    eventually(lambda: not _alive(worker), 10, "the worker gone")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
