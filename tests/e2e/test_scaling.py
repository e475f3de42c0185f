"""Elasticity on the real local stack: a backlog grows the fleet from zero past one
worker, workers start one at a time, a crowd of synchronous requests is answered, and
the idle fleet goes back to zero.

This module runs its own ``skyclass up`` (not the session's stack): a 2 s simulated EC2
boot, a pool of 3, a short idle grace, and a tiny configured throughput and target
latency, so that a few dozen images need more than one worker.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import pytest

from testbed.stack_process import SKYCLASS
from tests.support.images import held_out_images, named
from tests.support.stack import RunningStack, finished_job, running_stack, submit_job

pytestmark = pytest.mark.e2e

MAX_WORKERS = 3
BOOT_DELAY = 2.0
IDLE_GRACE = 8.0
# 0.5 img/s per worker x 10 s target: one worker per 5 images, until workers measure more.
ENV = {"SKYCLASS_WORKER_THROUGHPUT": "0.5", "SKYCLASS_TARGET_LATENCY": "10",
       "SKYCLASS_IDLE_GRACE": str(IDLE_GRACE), "TF_CPP_MIN_LOG_LEVEL": "2"}
PER_CLASS = 8  # 24 images
RESULTS_WITHIN = 120.0


@pytest.fixture(scope="module")
def scaling_stack(tiny_model, tmp_path_factory) -> Iterator[RunningStack]:
    env = {**ENV, "SKYCLASS_MODEL": str(tiny_model.model_path),
           "SKYCLASS_LABELS": str(tiny_model.labels_path)}
    with running_stack(tmp_path_factory.mktemp("skyclass-scaling"), env,
                       max_workers=MAX_WORKERS, boot_delay=BOOT_DELAY) as stack:
        yield stack


def up(stack: RunningStack) -> list[str]:
    """Instances pending or running, as GET /fleet shows them."""
    fleet = stack.get("/fleet").json()
    return [i["id"] for i in fleet["instances"] if i["state"] in ("pending", "running")]


def test_a_backlog_grows_the_fleet_from_zero_and_idle_brings_it_back(scaling_stack):
    stack = scaling_stack
    # GIVEN an idle fleet: a full pool, nothing running
    fleet = stack.get("/fleet").json()
    assert len(fleet["instances"]) == MAX_WORKERS and not up(stack)
    files = named(held_out_images(PER_CLASS))

    # WHEN a backlog of 24 images is uploaded
    job = submit_job(stack, files)

    # THEN the uploads themselves started a worker instance (the S3-event function's cold
    # start, which a scaling tick that came first would have made needless), and it runs
    # a worker
    pool = {i["id"] for i in fleet["instances"]}
    started = stack.eventually(lambda: _logged(stack, "cold start: started worker "), 60,
                               "the S3-event function starting a worker")
    assert started in pool
    stack.eventually(stack.worker_processes, BOOT_DELAY + 30, "a worker process")
    # AND the fleet grows past one while the backlog is worked off
    peak = 0

    def finished() -> dict | None:
        nonlocal peak
        peak = max(peak, len(up(stack)))
        return finished_job(stack, job["job_id"])

    status = stack.eventually(finished, RESULTS_WITHIN, "every result")
    assert status["done"] == len(files)
    assert all(r["name"].startswith(f"{r['label']}-") for r in status["results"])
    assert peak > 1, "the fleet never grew past one worker"
    # AND its workers started one at a time, each once the one before it was ready
    assert_started_one_at_a_time(stack)
    # AND /fleet says the size was chosen, and that the workers share the cores
    note = stack.get("/fleet").json()["limits"]["note"]
    assert note.startswith(f"{MAX_WORKERS} workers as chosen") and "inference thread" in note
    # AND once idle past the grace, no instance runs and no worker process is left
    stack.eventually(lambda: not up(stack) and not stack.worker_processes(), IDLE_GRACE + 45,
                     "the fleet back at zero")
    decision = stack.get("/fleet").json()["last_decision"]
    assert decision["desired"] == 0


def test_a_crowd_of_synchronous_requests_is_answered_each_with_its_own_result(
        scaling_stack):
    # GIVEN 30 clients, each with one image
    files = named(held_out_images(10, first=500))

    def classify(file: tuple[str, bytes]) -> dict:
        response = scaling_stack.post("/classify", files={"myfile": (*file, "image/jpeg")})
        if response.status_code == 202:
            url = urljoin(f"{scaling_stack.api}/classify", response.json()["status_url"])
            return scaling_stack.eventually(lambda: _done(scaling_stack, url), RESULTS_WITHIN,
                                            "a result")
        assert response.status_code == 200, response.text
        return response.json()

    # WHEN they all POST /classify at once
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = list(pool.map(classify, files))
    # THEN each gets its own image's result: 200, or 202 and then done at its status URL
    assert [r["name"] for r in results] == [name for name, _ in files]
    assert all(r["status"] == "done" and r["name"].startswith(f"{r['label']}-")
               for r in results)


def assert_started_one_at_a_time(stack: RunningStack) -> None:
    events = re.findall(r"worker (i-\w+) (started|ready)", stack.console.read_text())
    starting = None
    for instance, what in events:
        if what == "started":
            assert starting is None, f"{instance} started while {starting} was starting"
            starting = instance
        elif instance == starting:
            starting = None
    assert sum(what == "started" for _, what in events) > 1, events


def _done(stack: RunningStack, url: str) -> dict | None:
    response = stack.get(url.removeprefix(stack.api))
    return response.json() if response.status_code == 200 else None


def test_skyclass_status_watch_redraws_until_ctrl_c(scaling_stack):
    # GIVEN skyclass status --watch on the stack, in a terminal (a pseudo-terminal here:
    # without one, rich draws only the last frame)
    screen, terminal = pty.openpty()
    watch = subprocess.Popen([str(SKYCLASS), "status", "--api", scaling_stack.api, "--watch",
                              "--interval", "0.2"], stdin=terminal, stdout=terminal,
                             stderr=terminal, preexec_fn=ctrl_c_as_in_a_terminal)
    os.close(terminal)
    shown = _Screen(screen)
    # WHEN it has redrawn the fleet three times and gets Ctrl-C
    scaling_stack.eventually(lambda: shown.text().count("refreshed") >= 3, 60,
                             "three redraws of the fleet", period=0.2)
    watch.send_signal(signal.SIGINT)
    code = watch.wait(timeout=20)
    # THEN it stops cleanly, having shown the queue, the pool and the last decision
    out = shown.text()
    assert code == 0, out
    assert "dead letters" in out and f"of {MAX_WORKERS} in the pool" in out
    assert "last decision" in out and "refreshed" in out


class _Screen:
    """Everything written to a pseudo-terminal, read as it comes."""

    def __init__(self, fd: int) -> None:
        self._fd, self._chunks = fd, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")


def _logged(stack: RunningStack, words: str) -> str | None:
    """What follows ``words`` (to the end of its line) where one of the stack's
    processes logged them, or None."""
    for path in stack.log_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        if words in text:
            return text.split(words, 1)[1].split()[0]
    return None


def ctrl_c_as_in_a_terminal() -> None:
    """Give the child the SIGINT a terminal gives. A shell starts background jobs with
    SIGINT ignored, which their children inherit, and a Python started that way never
    raises KeyboardInterrupt: run from such a job (a CI runner may be one), the test
    would wait on a watch that cannot hear Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
