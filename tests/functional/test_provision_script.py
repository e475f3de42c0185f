"""ami_build/provision.sh, run for real into a temporary prefix from the very bundle the
bake driver uploads to its builder (no system packages, no weights download: the
machine is offline and not an instance). It creates a venv and installs the worker
from the local wheel caches, which takes about a minute.

Then fetch-settings, which the systemd unit runs before each start, is run against a
stand-in instance metadata service, to show the worker's settings come from the
instance's user data."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ami_build.bake import pack_sources
from tests.support.paths import REPO_ROOT


@pytest.mark.slow
def test_provision_sh_installs_a_runnable_worker_and_its_unit(tmp_path):
    # GIVEN the bake's source bundle, unpacked as the builder unpacks it
    with tarfile.open(fileobj=io.BytesIO(pack_sources(REPO_ROOT))) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    source = tmp_path / "src" / "skyclass"
    prefix = tmp_path / "opt"
    # WHEN provision.sh runs into a prefix
    done = subprocess.run(
        ["bash", str(source / "ami_build" / "provision.sh"), "--source", str(source),
         "--prefix", str(prefix), "--no-system", "--no-weights",
         "--systemd-dir", str(prefix / "systemd")],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # THEN it reports ready
    assert (prefix / "READY").is_file()
    # AND its venv runs the worker from the installed package, not from a checkout
    probe = subprocess.run(
        [str(prefix / "venv" / "bin" / "python"), "-c",
         "import ec2_worker.worker, skyclass.runtime.settings; print(ec2_worker.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(prefix / "venv"))
    # AND the unit runs that venv's worker under systemd's restart policy, in the prefix
    unit = (prefix / "systemd" / "skyclass-worker.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/python -m ec2_worker" in unit
    assert f"ExecStartPre=+{prefix}/bin/fetch-settings" in unit
    assert "Restart=always" in unit and "@PREFIX@" not in unit and "@LOG_DIR@" not in unit
    assert f"ExecStartPre=-+{prefix}/bin/start-log-agent" in unit
    assert (prefix / "bin" / "start-log-agent").is_file()


class _Imds(BaseHTTPRequestHandler):
    """IMDSv2 as an instance sees it: a token first, then user data and its id."""

    user_data = b""

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        self._answer(b"token-123" if self.path == "/latest/api/token" else None)

    def do_GET(self):  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != "token-123":
            self._answer(None, status=401)
        elif self.path == "/latest/user-data":
            self._answer(self.user_data)
        elif self.path == "/latest/meta-data/instance-id":
            self._answer(b"i-0123456789abcdef0")
        else:
            self._answer(None)

    def _answer(self, body: bytes | None, status: int = 200) -> None:
        self.send_response(status if body is not None else max(status, 404))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


def test_fetch_settings_takes_the_workers_settings_from_the_instance(tmp_path):
    # GIVEN an instance whose user data holds the stage's settings (and something else)
    _Imds.user_data = (b"SKYCLASS_STAGE=prod\nSKYCLASS_QUEUE_URL=https://sqs/1/q\n"
                       b"AWS_REGION=eu-west-1\nPATH=/evil\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # WHEN fetch-settings runs, as the unit's ExecStartPre does
        out = tmp_path / "run" / "worker.env"
        subprocess.run(
            [str(REPO_ROOT / "ami_build" / "fetch-settings"), str(out)], check=True,
            env={"PATH": "/usr/bin:/bin",
                 "SKYCLASS_IMDS_URL": f"http://127.0.0.1:{server.server_port}"},
            timeout=30)
    finally:
        server.shutdown()
    # THEN the environment file holds exactly the skyclass and region settings and the id
    assert out.read_text().splitlines() == [
        "SKYCLASS_STAGE=prod", "SKYCLASS_QUEUE_URL=https://sqs/1/q", "AWS_REGION=eu-west-1",
        "SKYCLASS_WORKER_ID=i-0123456789abcdef0"]


def _fake_agent(root):
    """A stand-in for the CloudWatch agent's control script that records its arguments."""
    ctl = root / "bin" / "amazon-cloudwatch-agent-ctl"
    ctl.parent.mkdir(parents=True)
    ctl.write_text(f'#!/bin/sh\necho "$@" >"{root}/called"\n')
    ctl.chmod(0o755)
    return root


def _start_log_agent(tmp_path, agent_dir, env_text):
    env_file = tmp_path / "worker.env"
    env_file.write_text(env_text)
    return subprocess.run(
        [str(REPO_ROOT / "ami_build" / "start-log-agent"), str(env_file),
         "/var/log/skyclass/worker.log"],
        env={"PATH": "/usr/bin:/bin", "SKYCLASS_PYTHON": sys.executable,
             "SKYCLASS_CWAGENT_DIR": str(agent_dir), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=60)


def test_the_worker_log_goes_to_the_stages_group_one_stream_per_instance(tmp_path):
    # GIVEN an instance of stage prod with the CloudWatch agent
    agent = _fake_agent(tmp_path / "agent")
    # WHEN the worker unit runs start-log-agent before the worker starts
    done = _start_log_agent(tmp_path, agent, "SKYCLASS_STAGE=prod\nAWS_REGION=eu-west-1\n")
    assert done.returncode == 0, done.stderr
    # THEN the agent ships the worker's log file to the stage's workers group, one stream
    # per instance, as configured
    config = json.loads((agent / "etc" / "skyclass-worker.json").read_text())
    [collected] = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert collected == {"file_path": "/var/log/skyclass/worker.log",
                         "log_group_name": "/skyclass/prod/workers",
                         "log_stream_name": "{instance_id}", "timezone": "UTC"}
    assert (agent / "called").read_text().split() == [
        "-a", "fetch-config", "-m", "ec2", "-s", "-c",
        f"file:{agent / 'etc' / 'skyclass-worker.json'}"]


def test_without_the_agent_the_worker_starts_anyway_and_says_where_its_log_is(tmp_path):
    done = _start_log_agent(tmp_path, tmp_path / "none", "SKYCLASS_STAGE=prod\n")
    assert done.returncode == 0
    assert "no CloudWatch agent" in done.stderr and "/var/log/skyclass/worker.log" in done.stderr


def test_the_units_output_goes_to_the_file_the_agent_ships():
    unit = (REPO_ROOT / "ami_build" / "skyclass-worker.service").read_text()
    assert "StandardOutput=append:@LOG_DIR@/worker.log" in unit
    assert ("ExecStartPre=-+@PREFIX@/bin/start-log-agent /run/skyclass/worker.env "
            "@LOG_DIR@/worker.log") in unit
