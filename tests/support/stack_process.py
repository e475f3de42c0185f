"""``skyclass up`` as a child process, started the way ``make run`` starts it, for the
end-to-end tests and the benchmarks that drive the real local stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        """Seconds until ``/health`` answered; raises with the logs after ``timeout``."""
        start = time.monotonic()
        while not self.healthy():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"skyclass up not ready in {timeout:g}s\n{self.diagnostics()}")
            time.sleep(0.2)
        return time.monotonic() - start

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
