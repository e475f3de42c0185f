"""``skyclass up`` as a child process, started the way ``make run`` starts it, for the
end-to-end tests and the benchmarks that drive the real local stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import psutil
import requests

from testbed.ports import free_port
from testbed.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
SKYCLASS = Path(sys.executable).with_name("skyclass")


@dataclass
class StackProcess:
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

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"skyclass up exited with {self.process.returncode}\n"
                               f"{self.diagnostics()}")
        try:
            return self.get("/health").status_code == 200
        except requests.ConnectionError:
            return False

    def wait_ready(self, timeout: float) -> float:
        """Seconds until ``/health`` answered; raises with the logs after ``timeout``
        (at once if ``skyclass up`` exits)."""
        start = time.monotonic()
        eventually(self.healthy, timeout, "skyclass up answering /health", period=0.2,
                   explain=self.diagnostics)
        return time.monotonic() - start

    def eventually(self, check: Callable[[], T], timeout: float, what: str,
                   period: float = 0.5) -> T:
        """``testbed.waiting.eventually``, explained by the stack's logs."""
        return eventually(check, timeout, what, period=period, explain=self.diagnostics)

    def stop(self, timeout: float = 60.0) -> tuple[int, list[psutil.Process]]:
        """SIGTERM, as Ctrl-C would; returns the exit code and any process that outlived
        the stack (killed here so nothing leaks)."""
        try:
            started = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            started = []
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        _, alive = psutil.wait_procs(started, timeout=5)
        for orphan in alive:
            orphan.kill()
        return code, alive

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
        parts = [f"== {self.console.name}\n{tail(self.console)}"]
        parts += [f"== {p.name}\n{tail(p)}" for p in sorted(self.log_dir.glob("*.log"))]
        return "\n".join(parts)


def start_stack(state_dir: Path, env: Mapping[str, str], *, max_workers: int | None,
                boot_delay: float = 0.0) -> StackProcess:
    """Start ``skyclass up`` on free ports, its logs under ``state_dir``
    (``max_workers`` None: the stack sizes the fleet to the machine)."""
    api_port, aws_port = free_port(), free_port()
    console = state_dir / "console.log"
    sizing = [] if max_workers is None else ["--max-workers", str(max_workers)]
    with console.open("wb") as out:
        process = subprocess.Popen(
            [str(SKYCLASS), "up", "--api-port", str(api_port), "--aws-port", str(aws_port),
             *sizing, "--boot-delay", str(boot_delay)],
            cwd=REPO_ROOT, env={**os.environ, "SKYCLASS_LOCAL_DIR": str(state_dir), **env},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return StackProcess(api=f"http://127.0.0.1:{api_port}",
                        endpoint=f"http://127.0.0.1:{aws_port}", process=process,
                        log_dir=state_dir / "logs", console=console)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
