"""The embedded AWS emulator (``python -m skyclass.operations.local.emulator``) as its
own process, for tests that need one outside the local stack."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from testbed.ports import free_port
from testbed.waiting import eventually


@dataclass
class EmulatorProcess:
    endpoint: str
    process: subprocess.Popen

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region)


@contextmanager
def emulator_process(*args: str, timeout: float = 30.0) -> Iterator[EmulatorProcess]:
    """The emulator on a free port (with ``args``), once it accepts connections; SIGTERM
    when the block ends (``process.returncode`` says how it stopped)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skyclass.operations.local.emulator", "--port", str(port),
         *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: _accepts(port) or process.poll() is not None, timeout,
                   "the emulator accepting connections", period=0.2)
        assert process.poll() is None, f"the emulator exited with {process.returncode}"
        yield EmulatorProcess(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
