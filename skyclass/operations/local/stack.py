"""``skyclass up``: the whole service on one machine, supervised in the foreground.

The supervisor starts the AWS emulator, provisions the ``local`` stage on it with the
same code as for AWS, then starts Chalice's local server (API Gateway + the route
Lambdas; skyclass.operations.local.api_server), the Lambda host (S3 events and the scaling
schedule) and the instance runner (EC2 + systemd, polled from the supervisor's main
loop), and ships their log files into the emulator's CloudWatch Logs, as AWS would hold
them (skyclass.operations.local.log_shipper), for ``skyclass logs``. Every child gets
the same environment: the emulator's endpoint, fake
credentials and the provisioned names, so nothing in the product code knows it is
local. Ctrl-C or SIGTERM stops workers first, then the other processes in the reverse
order of their start, each in its own process group, SIGKILL for stragglers; on Linux
a supervisor killed outright takes its children
with it (``processes.die_with_parent``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from skyclass.operations.local.capacity import local_capacity, machine
from skyclass.operations.local.emulator import port_is_free
from skyclass.operations.local.log_shipper import LogShipper
from skyclass.operations.local.processes import signal_group, spawn
from skyclass.operations.local.runner import (
    POLL_PERIOD,
    InstanceRunner,
    LocalWorkerSpawner,
    pool_states,
)
from skyclass.operations.project import PROJECT_DIR, chalice_stage_env
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.settings import Settings, standard_region

STAGE = "local"

# Local defaults that make the demo snappy; the environment still wins. A worker on a
# laptop's CPU classifies batches of 8 as fast as batches of 32 (docs/benchmarks.md,
# section 1), and answers the first of a burst four times sooner.
LOCAL_DEFAULTS = {c.SCALE_PERIOD: "2", c.IDLE_GRACE: "20", c.BATCH_SIZE: "8"}
LOCAL_WORKER_START_S = 10.0  # a local worker's TensorFlow import and model load
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
EMULATOR_READY_TIMEOUT = 30.0
API_READY_TIMEOUT = 60.0
CHILD_STOP_GRACE = 5.0


class StackError(Exception):
    """The stack cannot start or keep running; the message says why, for a person."""


def up(
    api_port: int, aws_port: int, max_workers: int | None, boot_delay: float,
    host: str = "127.0.0.1",
) -> int:
    """Run the local stack in the foreground until Ctrl-C or SIGTERM; returns an exit
    code (0 after a requested stop, 1 if a part failed, 2 if it could not start).
    ``max_workers``: the pool's size as the operator chose it, or None to size it to
    this machine (skyclass.operations.local.capacity)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(api_port, aws_port, max_workers, boot_delay, host, stop)
    try:
        stack.start()
        return stack.supervise()
    except StackError as exc:
        _say(f"error: {exc}")
        return 2
    finally:
        # A second Ctrl-C while stopping interrupts the orderly stop; the children
        # then still go, with the supervisor (processes.die_with_parent).
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stack.stop()


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen
    log_path: Path


class LocalStack:
    """The processes of one ``skyclass up`` and the order they start and stop in."""

    def __init__(
        self,
        api_port: int,
        aws_port: int,
        max_workers: int | None,
        boot_delay: float,
        host: str,
        stop: threading.Event,
        project_dir: Path = PROJECT_DIR,
    ):
        self._api_port = api_port
        self._aws_port = aws_port
        self._max_workers = max_workers
        self._boot_delay = boot_delay
        self._host = host
        self._stop_requested = stop
        self._project_dir = project_dir
        self._log_dir = local_state_dir(project_dir) / "logs"
        self._children: list[_Child] = []
        self._runner: InstanceRunner | None = None
        self._shipper: LogShipper | None = None
        self._shipping = threading.Event()
        self._shipper_thread: threading.Thread | None = None

    # ---- start -------------------------------------------------------------------

    def start(self) -> None:
        if not (self._project_dir / "app.py").is_file():
            raise StackError(f"no Chalice app.py in {self._project_dir}; run from a checkout")
        for port, option in ((self._aws_port, "--aws-port"), (self._api_port, "--api-port")):
            if not port_is_free(self._host, port):
                raise StackError(
                    f"port {port} on {self._host} is already in use (another `skyclass up`?); "
                    f"stop it or pick another with {option}"
                )
        self._log_dir.mkdir(parents=True, exist_ok=True)
        endpoint = f"http://{self._host}:{self._aws_port}"
        # The emulator takes any region; the one the operator's chain names, if any.
        aws_env = emulator_env(endpoint, region=standard_region(os.environ) or "us-east-1")
        os.environ.update(aws_env)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)

        self._spawn("emulator", ["-m", "skyclass.operations.local.emulator",
                                 "--port", str(self._aws_port), "--host", self._host],
                    dict(os.environ))
        self._wait_until(lambda: _accepts(self._host, self._aws_port), EMULATOR_READY_TIMEOUT,
                         "the AWS emulator", watch="emulator")
        aws = AwsClients(aws_env[c.REGION])

        from skyclass.operations.provision.stage import provision

        config_env = chalice_stage_env(self._project_dir, STAGE)
        capacity = local_capacity(*machine(), chosen=self._max_workers,
                                  default=Settings().max_workers)
        settings = stage_settings(
            {**config_env, **os.environ}, capacity.max_workers, self._boot_delay
        )
        try:
            provisioned = provision(
                settings, aws, s3_events_to_queue=True, register_local_ami=True
            )
        except Exception as exc:  # botocore's errors, from an emulator that misbehaves
            raise StackError(f"could not provision the local stage on the emulator: {exc}") from exc
        self._ship_logs(aws, settings.log_retention_days)
        r = provisioned.resources
        settings = settings.replace(
            input_bucket=r.input_bucket, output_bucket=r.output_bucket,
            queue_url=r.queue_url, dlq_url=r.dlq_url,
            fleet_note=capacity.note,
        )
        env = child_env(os.environ, settings, config_env)
        for warning in config_conflicts(config_env, env):
            _say(f"warning: {warning}")

        if settings.model == "resnet50":
            self._fetch_weights(env)

        api_server = ["-m", "skyclass.operations.local.api_server", "--stage", STAGE,
                      "--host", self._host, "--port", str(self._api_port)]
        self._spawn("api", api_server, env)
        self._spawn("lambda-host", ["-m", "skyclass.operations.local.lambda_host"], env)

        spawner = LocalWorkerSpawner({**env, **capacity.worker_env(os.environ)},
                                     self._log_dir, cwd=self._project_dir)
        self._runner = InstanceRunner(
            pool_states(aws.ec2, STAGE), spawner, boot_delay=self._boot_delay, report=_say,
            last_words=spawner.last_words,
        )

        api = f"http://{self._host}:{self._api_port}"
        self._wait_until(lambda: _healthy(f"{api}/health"), API_READY_TIMEOUT, "the API",
                         watch="api")
        _say(
            f"skyclass is up (stage {STAGE}, {len(provisioned.worker_instance_ids)} worker "
            f"instance(s), boot delay {self._boot_delay:g}s)\n"
            f"  API        {api}\n"
            f"  web page   {api}/\n"
            f"  emulator   {endpoint}  (AWS_ENDPOINT_URL; input bucket {r.input_bucket},"
            f" drop folder s3://{r.input_bucket}/{c.INCOMING_PREFIX})\n"
            f"  workers    {capacity.note}; started one at a time\n"
            f"  logs       {self._log_dir}/ (worker-<instance id>.log per worker); one "
            f"image's trail: skyclass logs --stage {STAGE} --image ID\n"
            f"Ctrl-C stops everything."
        )

    def _ship_logs(self, aws: AwsClients, retention_days: int) -> None:
        self._shipper = LogShipper(aws.client("logs"), self._log_dir, STAGE, retention_days)
        self._shipper_thread = threading.Thread(target=self._shipper.run,
                                                args=(self._shipping,), name="log-shipper",
                                                daemon=True)
        self._shipper_thread.start()

    def _fetch_weights(self, env: Mapping[str, str]) -> None:
        """The default model's ImageNet weights, downloaded once into Keras' cache before
        any worker starts (workers only read them). Offline, say so plainly and go on:
        the API still answers, and each worker names the missing file."""
        _say("checking the ResNet-50 ImageNet weights (downloading them once if missing)")
        done = subprocess.run([sys.executable, "-m", "ec2_worker.weights"], env=dict(env),
                              cwd=self._project_dir, capture_output=True, text=True)
        for line in (done.stdout + done.stderr).splitlines():
            if line.startswith("ResNet-50 weights"):
                _say(line)
        if done.returncode != 0:
            _say("warning: workers cannot classify until the weights are there; to try "
                 "skyclass without them, set SKYCLASS_MODEL and SKYCLASS_LABELS to a .keras "
                 "model and its labels file (README.md, \"Models\")")

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        log_path = self._log_dir / f"{name}.log"
        popen = spawn([sys.executable, *args], env, self._project_dir, log_path)
        self._children.append(_Child(name, popen, log_path))

    def _wait_until(
        self, ready: Callable[[], bool], timeout: float, what: str, watch: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self._tick_runner()
            self._raise_if_exited(watch)
            if self._stop_requested.is_set():
                raise StackError(f"stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise StackError(f"{what} did not answer within {timeout:g}s; see {self._log_dir}")
            time.sleep(0.2)

    # ---- run ---------------------------------------------------------------------

    def supervise(self) -> int:
        """Wait for a stop request; a child that dies takes the stack down (exit 1)."""
        while not self._stop_requested.wait(POLL_PERIOD):
            self._tick_runner()
            try:
                self._raise_if_exited()
            except StackError as exc:
                _say(f"error: {exc}")
                return 1
        _say("stopping (Ctrl-C again to hurry)")
        return 0

    def _tick_runner(self) -> None:
        # In the main thread: workers are started from the thread their death-with-the-
        # parent guard is tied to (see processes.die_with_parent).
        if self._runner is not None:
            self._runner.tick()

    def _raise_if_exited(self, name: str | None = None) -> None:
        for child in self._children:
            if name not in (None, child.name):
                continue
            code = child.popen.poll()
            if code is not None:
                raise StackError(
                    f"{child.name} exited with code {code}; the end of {child.log_path}:\n"
                    f"{_tail(child.log_path)}"
                )

    # ---- stop --------------------------------------------------------------------

    def stop(self) -> None:
        """Workers first (they finish their batch against a live emulator), then the
        other processes, newest first; SIGKILL whatever ignores SIGTERM."""
        if self._runner is not None:
            self._runner.shutdown()
        self._last_logs()
        for child in reversed(self._children):
            signal_group(child.popen.pid, signal.SIGTERM)
            try:
                child.popen.wait(CHILD_STOP_GRACE)
            except subprocess.TimeoutExpired:
                _say(f"{child.name} ignored SIGTERM; killing it")
                signal_group(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
            # Anything the child left behind in its process group goes too.
            signal_group(child.popen.pid, signal.SIGKILL)
        self._children.clear()

    def _last_logs(self) -> None:
        """The workers' last lines, shipped while the emulator still runs."""
        if self._shipper is None or self._shipper_thread is None:
            return
        self._shipping.set()
        self._shipper_thread.join(5)
        try:
            self._shipper.ship_once()
        except Exception as exc:  # the emulator may be gone already
            _say(f"could not ship the last log lines: {exc}")
        self._shipper = None


# ---- environment ---------------------------------------------------------------------

def local_state_dir(project_dir: Path = PROJECT_DIR) -> Path:
    return Path(os.environ.get(c.LOCAL_DIR) or project_dir / ".skyclass" / "local")


def emulator_env(endpoint: str, region: str) -> dict[str, str]:
    """What points a process at the emulator with credentials that cannot reach AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        c.REGION: region,
    }


def stage_settings(environ: Mapping[str, str], max_workers: int, boot_delay: float) -> Settings:
    """The local stage's settings: ``environ`` (the Chalice stage's variables under this
    process's environment) over the snappy local defaults, the command line over all.
    A local worker is "booting" for the simulated boot plus its own start (TF, model)."""
    boot_time = {c.BOOT_TIME: str(boot_delay + LOCAL_WORKER_START_S)}
    return Settings.from_env(
        {**LOCAL_DEFAULTS, **boot_time, **environ},
        stage=STAGE, max_workers=max_workers, boot_delay=boot_delay,
    )


def child_env(
    environ: Mapping[str, str], settings: Settings, config_env: Mapping[str, str]
) -> dict[str, str]:
    """Every child's environment: the stage's configured variables, under this
    process's environment, under the settings with the provisioned names."""
    return {**config_env, **environ, **settings.as_env()}


def config_conflicts(config_env: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """``chalice local`` writes the stage's configured variables over its environment,
    so a configured value that differs from the one the stack chose would give the API
    other resources than the workers use."""
    return [
        f".chalice/config.json sets {name}={value!r} for the local stage, which overrides "
        f"{env[name]!r} in the API process"
        for name, value in sorted(config_env.items())
        if name in env and env[name] != value
    ]


# ---- small helpers -------------------------------------------------------------------

def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} skyclass | {message}", flush=True)
