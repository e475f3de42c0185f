"""The local stand-in for EC2 + systemd: one worker process per running instance.

On AWS a worker instance boots the baked AMI and systemd starts ``ec2_worker`` with
``Restart=always``. Locally the scaler starts and stops the emulator's instances just
the same, and this runner watches their states (ARCHITECTURE.md, "Local mode"):

* ``running`` → start a worker process, once the simulated boot delay has passed since
  the runner first saw the instance running, and once no other worker is still starting:
  the instances share this machine's cores, and a worker's start (importing TensorFlow,
  loading, freezing and warming up the model) takes tens of CPU-seconds, which two at a
  time would take from each other and from the worker already serving;
* a worker that exits while its instance is still running is restarted after a short
  pause, as systemd would; the pause doubles with each crash in a row (up to
  ``MAX_RESTART_DELAY``), so a worker that cannot start does not flood the console;
* ``stopping``/``stopped``/``terminated``/gone → SIGTERM (the worker finishes its
  batch), then SIGKILL after a grace period, as EC2's stop does.

The decisions (``InstanceRunner.reconcile``) take the instance states and a spawner as
arguments, so they are tested with fakes; ``PopenWorker`` and ``LocalWorkerSpawner``
are the real processes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from skyclass.operations.local.processes import signal_group, spawn
from skyclass.runtime import constants as c
from skyclass.runtime.names import pool_filters

log = logging.getLogger(__name__)

RUNNING = "running"
POLL_PERIOD = 0.3
STOP_GRACE = 15.0
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A worker that ran this long before exiting was healthy: its restart pause starts over.
HEALTHY_RUN = 60.0
# A worker still starting after this long no longer holds back the next one's start.
START_TIMEOUT = 180.0
# What a worker logs once its model is loaded and warmed up (ec2_worker/__main__.py).
READY_LINE = b" ready: model "


class WorkerProcess(Protocol):
    """What the runner needs of a worker process (``PopenWorker`` or a test fake)."""

    pid: int

    def poll(self) -> int | None: ...

    def ready(self) -> bool:
        """Whether it has said it is ready to take work."""

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


Spawner = Callable[[str], WorkerProcess]
InstanceStates = Callable[[], Mapping[str, str]]


@dataclass
class _Instance:
    """What the runner remembers about one instance between polls."""

    running_since: float | None = None
    process: WorkerProcess | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    crashes: int = 0
    term_sent_at: float | None = None
    ready: bool = False
    held_back: bool = False


class InstanceRunner:
    """Keeps exactly one worker process per running instance, and none for the others."""

    def __init__(
        self,
        instance_states: InstanceStates,
        spawn: Spawner,
        *,
        boot_delay: float = 0.0,
        stop_grace: float = STOP_GRACE,
        restart_delay: float = RESTART_DELAY,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] = log.info,
        last_words: Callable[[str], str] = lambda instance_id: "",
    ):
        """``last_words(instance_id)``: what a worker that exited last said (the end of
        its log), shown with the exit so a person sees why without opening the log."""
        self._instance_states = instance_states
        self._spawn = spawn
        self._boot_delay = boot_delay
        self._stop_grace = stop_grace
        self._restart_delay = restart_delay
        self._clock = clock
        self._report = report
        self._last_words = last_words
        self._instances: dict[str, _Instance] = {}

    def workers(self) -> dict[str, WorkerProcess]:
        """The live worker process of each instance that has one."""
        return {i: s.process for i, s in self._instances.items() if s.process is not None}

    def reconcile(self) -> None:
        """One pass: read the instance states and start, restart or stop workers."""
        states = self._instance_states()
        now = self._clock()
        for instance_id in sorted(set(states) | set(self._instances)):
            state = states.get(instance_id)
            slot = self._instances.setdefault(instance_id, _Instance())
            self._reap(instance_id, slot, state, now)
            if state == RUNNING:
                self._keep_running(instance_id, slot, now)
            else:
                self._keep_stopped(instance_id, slot, state, now)
                if state is None and slot.process is None:
                    del self._instances[instance_id]

    def tick(self) -> None:
        """``reconcile``, with an emulator hiccup reported and left to the next tick."""
        try:
            self.reconcile()
        except Exception as exc:  # the next tick retries; the stack keeps running
            self._report(f"could not reconcile the worker instances: {exc}")

    def shutdown(self, grace: float | None = None, poll: float = 0.1) -> None:
        """Stop every worker as the stack goes down: SIGTERM, then SIGKILL after
        ``grace`` seconds."""
        grace = self._stop_grace if grace is None else grace
        workers = self.workers()
        for instance_id, process in workers.items():
            if process.poll() is None:
                self._report(f"stopping worker {instance_id} (pid {process.pid})")
                process.terminate()
        deadline = self._clock() + grace
        while any(p.poll() is None for p in workers.values()) and self._clock() < deadline:
            time.sleep(poll)
        for instance_id, process in workers.items():
            if process.poll() is None:
                self._report(f"worker {instance_id} ignored SIGTERM for {grace:.0f}s; killing it")
                process.kill()
        self._instances.clear()

    # ---- decisions for one instance ----------------------------------------------

    def _reap(self, instance_id: str, slot: _Instance, state: str | None, now: float) -> None:
        if slot.process is None:
            return
        code = slot.process.poll()
        if code is None:
            return
        if state == RUNNING and slot.term_sent_at is None:
            slot.crashes = 1 if now - slot.started_at >= HEALTHY_RUN else slot.crashes + 1
            delay = min(self._restart_delay * 2 ** (slot.crashes - 1), MAX_RESTART_DELAY)
            slot.restart_at = now + delay
            words = self._last_words(instance_id)
            self._report(
                f"worker {instance_id} exited with code {code} while its instance runs; "
                f"restarting in {delay:g}s" + (f"\n    its last words: {words}" if words else "")
            )
        else:
            self._report(f"worker {instance_id} stopped (exit code {code})")
        slot.process = None
        slot.term_sent_at = None

    def _keep_running(self, instance_id: str, slot: _Instance, now: float) -> None:
        if slot.running_since is None:
            slot.running_since = now
            if self._boot_delay > 0:
                self._report(
                    f"instance {instance_id} is running; its worker starts after a "
                    f"{self._boot_delay:g}s simulated boot"
                )
        if slot.process is not None:
            if not slot.ready and slot.process.ready():
                slot.ready = True
                self._report(f"worker {instance_id} ready, {now - slot.started_at:.1f}s "
                             "after its start")
            return
        booted = now >= slot.running_since + self._boot_delay
        if not booted or now < slot.restart_at:
            return
        starting = self._starting(instance_id, now)
        if starting is not None:
            if not slot.held_back:
                slot.held_back = True
                self._report(f"instance {instance_id} is running; its worker starts once "
                             f"worker {starting} is ready (one start at a time on this "
                             "machine)")
            return
        slot.process = self._spawn(instance_id)
        slot.started_at = now
        slot.ready = slot.held_back = False
        self._report(f"worker {instance_id} started (pid {slot.process.pid})")

    def _starting(self, instance_id: str, now: float) -> str | None:
        """Another instance whose worker is still starting, if any."""
        for other, slot in self._instances.items():
            if (other != instance_id and slot.process is not None and not slot.ready
                    and slot.term_sent_at is None and now - slot.started_at < START_TIMEOUT
                    and slot.process.poll() is None and not slot.process.ready()):
                return other
        return None

    def _keep_stopped(
        self, instance_id: str, slot: _Instance, state: str | None, now: float
    ) -> None:
        slot.running_since = None
        slot.restart_at = 0.0
        slot.crashes = 0
        if slot.process is None:
            return
        if slot.term_sent_at is None:
            slot.term_sent_at = now
            self._report(f"instance {instance_id} is {state or 'gone'}: SIGTERM to its worker")
            slot.process.terminate()
        elif now - slot.term_sent_at >= self._stop_grace:
            self._report(f"worker {instance_id} outlived SIGTERM by {self._stop_grace:g}s: SIGKILL")
            slot.process.kill()


# ---- the emulator's instances and real processes -------------------------------------

def pool_states(ec2: Any, stage: str) -> InstanceStates:
    """Read the stage's worker instances and their states from EC2 (the emulator)."""

    def states() -> dict[str, str]:
        pages = ec2.get_paginator("describe_instances").paginate(Filters=pool_filters(stage))
        return {
            instance["InstanceId"]: instance["State"]["Name"]
            for page in pages
            for reservation in page["Reservations"]
            for instance in reservation["Instances"]
        }

    return states


class PopenWorker:
    """A worker process in its own process group, so signals reach all of it and a
    Ctrl-C in the terminal reaches only the supervisor, which stops workers in order."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            log_file.write(f"--- started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._log_path = log_path
        self._log_from = log_path.stat().st_size
        self._ready = False
        self._popen = spawn(argv, env, cwd, log_path, append=True)
        self.pid = self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def ready(self) -> bool:
        """Whether this run of the worker has logged that it is ready."""
        if not self._ready:
            try:
                with self._log_path.open("rb") as log_file:
                    log_file.seek(self._log_from)
                    text = log_file.read()
            except OSError:
                return False
            # Keep a line's worth, in case the mark is still being written.
            self._log_from += max(0, len(text) - len(READY_LINE) - 200)
            self._ready = READY_LINE in text
        return self._ready

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self._popen.wait()

    def _signal(self, signum: int) -> None:
        signal_group(self._popen.pid, signum)


class LocalWorkerSpawner:
    """Starts ``ec2_worker`` from this checkout as an instance's systemd unit would,
    with the stage's settings and the instance id as the worker id."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path,
        argv: tuple[str, ...] = (sys.executable, "-m", "ec2_worker"),
    ):
        self._env = dict(env)
        self._log_dir = log_dir
        self._cwd = cwd
        self._argv = list(argv)

    def log_path(self, instance_id: str) -> Path:
        return self._log_dir / f"worker-{instance_id}.log"

    def last_words(self, instance_id: str) -> str:
        """The last line of the worker's log."""
        try:
            with self.log_path(instance_id).open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 4096))
                lines = log_file.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def __call__(self, instance_id: str) -> PopenWorker:
        env = {**self._env, c.WORKER_ID: instance_id}
        return PopenWorker(self._argv, env, self.log_path(instance_id), self._cwd)
