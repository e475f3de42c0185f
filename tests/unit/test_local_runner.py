"""The local runner's decisions: which instance gets a worker, restarts, stops.

Instances, processes and the clock are fakes; no process is started.
"""

from __future__ import annotations

import itertools

import pytest

from skyclass.operations.local.runner import START_TIMEOUT, InstanceRunner

_pids = itertools.count(1000)


class FakeProcess:
    def __init__(self, instance_id: str, obeys_sigterm: bool = True, ready: bool = True):
        self.instance_id = instance_id
        self.pid = next(_pids)
        self.signals: list[str] = []
        self.exit_code: int | None = None
        self.is_ready = ready
        self._obeys_sigterm = obeys_sigterm

    def poll(self) -> int | None:
        return self.exit_code

    def ready(self) -> bool:
        return self.is_ready

    def terminate(self) -> None:
        self.signals.append("SIGTERM")
        if self._obeys_sigterm:
            self.exit_code = 0

    def kill(self) -> None:
        self.signals.append("SIGKILL")
        self.exit_code = -9

    def crash(self, code: int = 1) -> None:
        self.exit_code = code


class World:
    """Instance states, a clock and a spawner that records every process it starts."""

    def __init__(self, obeys_sigterm: bool = True, ready_at_start: bool = True):
        self.states: dict[str, str] = {}
        self.now = 0.0
        self.started: list[FakeProcess] = []
        self.obeys_sigterm = obeys_sigterm
        self.ready_at_start = ready_at_start
        self.reports: list[str] = []

    def spawn(self, instance_id: str) -> FakeProcess:
        process = FakeProcess(instance_id, self.obeys_sigterm, self.ready_at_start)
        self.started.append(process)
        return process

    def runner(self, **kwargs) -> InstanceRunner:
        return InstanceRunner(
            lambda: dict(self.states), self.spawn, clock=lambda: self.now,
            report=self.reports.append,
            **kwargs,
        )

    def started_for(self, instance_id: str) -> list[FakeProcess]:
        return [p for p in self.started if p.instance_id == instance_id]


@pytest.fixture
def world() -> World:
    return World()


def test_only_running_instances_get_a_worker(world):
    # GIVEN one running and two stopped instances
    world.states = {"i-run": "running", "i-stop": "stopped", "i-pend": "pending"}
    runner = world.runner()
    # WHEN the runner looks twice
    runner.reconcile()
    runner.reconcile()
    # THEN exactly the running one has exactly one worker
    assert set(runner.workers()) == {"i-run"}
    assert len(world.started) == 1


def test_worker_starts_only_after_the_boot_delay(world):
    # GIVEN an instance that has just started, and a 5 s simulated boot
    world.states = {"i-1": "running"}
    runner = world.runner(boot_delay=5.0)
    # WHEN the runner sees it now and 4 s later
    runner.reconcile()
    world.now = 4.0
    runner.reconcile()
    # THEN it has no worker yet
    assert runner.workers() == {}
    # WHEN 5 s have passed since the runner first saw it running
    world.now = 5.0
    runner.reconcile()
    # THEN its worker runs
    assert set(runner.workers()) == {"i-1"}


def test_crashed_worker_is_restarted_after_a_pause(world):
    # GIVEN a running instance whose worker crashes
    world.states = {"i-1": "running"}
    runner = world.runner(restart_delay=1.0)
    runner.reconcile()
    world.started[0].crash(code=3)
    # WHEN the runner notices at once
    world.now = 0.3
    runner.reconcile()
    # THEN it waits before restarting, as systemd's RestartSec does
    assert runner.workers() == {}
    # WHEN the pause is over
    world.now = 1.5
    runner.reconcile()
    # THEN a fresh worker runs for the same instance
    assert len(world.started_for("i-1")) == 2
    assert runner.workers()["i-1"] is world.started[1]


def test_a_worker_that_keeps_crashing_is_restarted_less_and_less_often(world):
    # GIVEN a running instance whose worker crashes at once, every time
    world.states = {"i-1": "running"}
    runner = world.runner(restart_delay=1.0)
    starts = []
    # WHEN the runner watches it for a minute
    for tick in range(600):
        world.now = tick / 10
        runner.reconcile()
        worker = runner.workers().get("i-1")
        if worker is not None and worker.poll() is None:
            starts.append(world.now)
            worker.crash()
    # THEN the pauses between restarts grow (1, 2, 4, ... s) but it keeps trying
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0]
    assert len(starts) >= 5


def test_a_worker_that_ran_for_a_while_is_restarted_promptly(world):
    # GIVEN a worker that crashed twice in a row (pauses of 1 s, then 2 s)
    world.states = {"i-1": "running"}
    runner = world.runner(restart_delay=1.0)
    for now, crash in ((0.0, True), (0.5, False), (1.5, True), (2.0, False), (4.0, False)):
        world.now = now
        runner.reconcile()
        if crash:
            world.started[-1].crash()
    assert len(world.started) == 3
    # WHEN its third run ends in a crash after ten healthy minutes
    world.now = 604.0
    world.started[-1].crash()
    runner.reconcile()
    # THEN it is back after the first, short pause again
    world.now = 605.0
    runner.reconcile()
    assert len(world.started) == 4


@pytest.mark.parametrize("state", ["stopping", "stopped", "terminated"])
def test_stopping_an_instance_sends_sigterm_to_its_worker(world, state):
    # GIVEN an instance with a worker
    world.states = {"i-1": "running"}
    runner = world.runner()
    runner.reconcile()
    worker = world.started[0]
    # WHEN EC2 stops it
    world.states = {"i-1": state}
    runner.reconcile()
    runner.reconcile()
    # THEN its worker got one SIGTERM, exited, and is not restarted
    assert worker.signals == ["SIGTERM"]
    assert runner.workers() == {}
    assert len(world.started) == 1


def test_instance_that_disappears_stops_its_worker(world):
    # GIVEN an instance with a worker
    world.states = {"i-1": "running"}
    runner = world.runner()
    runner.reconcile()
    # WHEN the instance is no longer listed (terminated and filtered out)
    world.states = {}
    runner.reconcile()
    # THEN its worker was told to stop
    assert world.started[0].signals == ["SIGTERM"]


def test_worker_that_ignores_sigterm_is_killed_after_the_grace():
    # GIVEN a worker that ignores SIGTERM and an instance being stopped
    world = World(obeys_sigterm=False)
    world.states = {"i-1": "running"}
    runner = world.runner(stop_grace=10.0)
    runner.reconcile()
    world.states = {"i-1": "stopped"}
    runner.reconcile()
    # WHEN less than the grace period has passed
    world.now = 9.0
    runner.reconcile()
    # THEN it has only been asked to stop
    assert world.started[0].signals == ["SIGTERM"]
    # WHEN the grace period is over
    world.now = 10.0
    runner.reconcile()
    # THEN it is killed
    assert world.started[0].signals == ["SIGTERM", "SIGKILL"]


def test_restarted_instance_gets_a_new_worker_after_a_new_boot(world):
    # GIVEN an instance that ran a worker and was stopped
    world.states = {"i-1": "running"}
    runner = world.runner(boot_delay=2.0)
    runner.reconcile()
    world.now = 2.0
    runner.reconcile()
    world.states = {"i-1": "stopped"}
    world.now = 3.0
    runner.reconcile()
    # WHEN it is started again
    world.states = {"i-1": "running"}
    world.now = 10.0
    runner.reconcile()
    # THEN it boots again before its worker starts
    assert runner.workers() == {}
    world.now = 12.0
    runner.reconcile()
    assert len(world.started_for("i-1")) == 2
    assert set(runner.workers()) == {"i-1"}


def test_shutdown_stops_every_worker(world):
    # GIVEN two running instances with workers
    world.states = {"i-1": "running", "i-2": "running"}
    runner = world.runner()
    runner.reconcile()
    # WHEN the stack shuts down
    runner.shutdown(grace=0.0)
    # THEN both workers got SIGTERM and none is left
    assert [p.signals for p in world.started] == [["SIGTERM"], ["SIGTERM"]]
    assert runner.workers() == {}


def test_an_instance_started_again_while_its_worker_drains_gets_one_new_worker():
    # GIVEN a worker that is still finishing its batch after its instance was stopped
    world = World(obeys_sigterm=False)
    world.states = {"i-1": "running"}
    runner = world.runner(boot_delay=1.0, stop_grace=30.0)
    runner.reconcile()
    world.now = 1.0
    runner.reconcile()
    draining = world.started[0]
    world.states = {"i-1": "stopped"}
    world.now = 2.0
    runner.reconcile()
    # WHEN the scaler starts the instance again before that worker has exited
    world.states = {"i-1": "running"}
    world.now = 5.0
    runner.reconcile()
    # THEN no second worker runs beside the draining one
    assert len(world.started) == 1 and draining.signals == ["SIGTERM"]
    # WHEN the old worker finishes its batch and exits
    draining.exit_code = 0
    world.now = 6.0
    runner.reconcile()
    world.now = 7.0
    runner.reconcile()
    # THEN exactly one fresh worker runs for the instance, not counted as a crash
    assert len(world.started_for("i-1")) == 2
    assert runner.workers()["i-1"] is world.started[1]


def test_workers_start_one_at_a_time_so_a_second_start_does_not_stall_the_first():
    # GIVEN three instances that start together, and workers that take a while to be ready
    world = World(ready_at_start=False)
    world.states = {"i-1": "running", "i-2": "running", "i-3": "running"}
    runner = world.runner()
    # WHEN the runner looks
    runner.reconcile()
    runner.reconcile()
    # THEN one worker starts, and the others wait for it, saying why
    assert [p.instance_id for p in world.started] == ["i-1"]
    assert any("once worker i-1 is ready" in r for r in world.reports)
    # WHEN it is ready: THEN the next one starts, and only then the last
    world.started[0].is_ready = True
    world.now = 20.0
    runner.reconcile()
    assert [p.instance_id for p in world.started] == ["i-1", "i-2"]
    assert any("worker i-1 ready, 20.0s after its start" in r for r in world.reports)
    world.started[1].is_ready = True
    runner.reconcile()
    assert len(world.started) == 3


def test_a_worker_that_never_gets_ready_holds_the_others_back_only_so_long():
    world = World(ready_at_start=False)
    world.states = {"i-1": "running", "i-2": "running"}
    runner = world.runner()
    runner.reconcile()
    world.now = START_TIMEOUT + 1
    runner.reconcile()
    assert [p.instance_id for p in world.started] == ["i-1", "i-2"]


def test_a_worker_that_crashes_while_starting_does_not_hold_the_others_back():
    world = World(ready_at_start=False)
    world.states = {"i-1": "running", "i-2": "running"}
    runner = world.runner()
    runner.reconcile()
    world.started[0].crash()
    world.now = 0.5
    runner.reconcile()
    assert "i-2" in [p.instance_id for p in world.started]
