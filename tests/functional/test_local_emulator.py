"""The embedded AWS as its own process: answers boto3, stops on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import boto3

from skyclass.local.emulator import main


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_emulator_serves_aws_until_sigterm():
    # GIVEN the emulator started as `python -m skyclass.local.emulator`
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skyclass.local.emulator", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        deadline = time.monotonic() + 20
        while True:
            try:
                # WHEN a client creates a bucket through it
                s3.create_bucket(Bucket="hello")
                break
            except Exception:
                assert time.monotonic() < deadline, "the emulator did not answer"
                time.sleep(0.2)
        # THEN the bucket is there
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["hello"]
    finally:
        # AND SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_emulator_refuses_a_taken_port(capsys):
    # GIVEN a port something else listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN the emulator is asked to use it
        code = main(["--port", str(port)])
    # THEN it says so and exits with an error
    assert code == 2
    assert f"port {port}" in capsys.readouterr().err
