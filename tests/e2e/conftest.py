"""The real local stack, started once per session the way ``make run`` starts it.

``skyclass up`` runs as a subprocess on free ports with the session's tiny model; tests
talk to it only over HTTP and through boto3 at the emulator's endpoint. Teardown sends
SIGTERM, as Ctrl-C would, and checks that no process the stack started survives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import psutil
import pytest
import requests

from tests.conftest import REPO_ROOT

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
# Short, so the idle fleet goes back to zero within the test; long enough that the
# tests, run back to back, find a warm worker.
IDLE_GRACE = "12"

T = TypeVar("T")


@dataclass
class RunningStack:
    api: str
    endpoint: str
    process: subprocess.Popen
    log_dir: Path
    console: Path

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.api}{path}", timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.api}{path}", timeout=30, **kwargs)

    def buckets(self) -> tuple[str, str]:
        names = [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]]
        return (
            next(n for n in names if n.startswith("skyclass-local-input-")),
            next(n for n in names if n.startswith("skyclass-local-output-")),
        )

    def worker_processes(self) -> list[psutil.Process]:
        """The stack's live ``ec2_worker`` processes (one per running instance)."""
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if "ec2_worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def diagnostics(self) -> str:
        parts = [f"== {self.console.name}\n{_tail(self.console)}"]
        parts += [f"== {p.name}\n{_tail(p)}" for p in sorted(self.log_dir.glob("*.log"))]
        return "\n".join(parts)


def eventually(check: Callable[[], T | None], timeout: float, what: str,
               stack: RunningStack | None = None, period: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail, with the stack's logs,
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = f"\n{stack.diagnostics()}" if stack else ""
            pytest.fail(f"{what}: not within {timeout:g}s{logs}")
        time.sleep(period)


@pytest.fixture(scope="session")
def local_stack(tiny_model, tmp_path_factory) -> Iterator[RunningStack]:
    state_dir = tmp_path_factory.mktemp("skyclass-local")
    api_port, aws_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "SKYCLASS_MODEL": str(tiny_model.model_path),
        "SKYCLASS_LABELS": str(tiny_model.labels_path),
        "SKYCLASS_IDLE_GRACE": IDLE_GRACE,
        "SKYCLASS_LOCAL_DIR": str(state_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    console = state_dir / "console.log"
    skyclass = Path(sys.executable).with_name("skyclass")
    with console.open("wb") as out:
        process = subprocess.Popen(
            [str(skyclass), "up", "--api-port", str(api_port), "--aws-port", str(aws_port),
             "--max-workers", "2", "--boot-delay", "0.5"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    stack = RunningStack(
        api=f"http://127.0.0.1:{api_port}", endpoint=f"http://127.0.0.1:{aws_port}",
        process=process, log_dir=state_dir / "logs", console=console,
    )
    try:
        eventually(lambda: _ready(stack), READY_TIMEOUT, "skyclass up answering /health", stack)
        yield stack
    finally:
        _stop_and_check_nothing_survives(stack)


def _ready(stack: RunningStack) -> bool:
    if stack.process.poll() is not None:
        pytest.fail(f"skyclass up exited with {stack.process.returncode}\n{stack.diagnostics()}")
    try:
        return stack.get("/health").status_code == 200
    except requests.ConnectionError:
        return False


def _stop_and_check_nothing_survives(stack: RunningStack) -> None:
    try:
        started = psutil.Process(stack.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    stack.process.send_signal(signal.SIGTERM)
    try:
        code = stack.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(stack.process.pid, signal.SIGKILL)
        pytest.fail(f"skyclass up ignored SIGTERM for {STOP_TIMEOUT:g}s\n{stack.diagnostics()}")
    _, alive = psutil.wait_procs(started, timeout=5)
    for orphan in alive:
        orphan.kill()
    assert not alive, f"processes outlived skyclass up: {[p.pid for p in alive]}"
    assert code == 0, f"skyclass up exited with {code}\n{stack.diagnostics()}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
