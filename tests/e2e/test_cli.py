"""The CLI against the real local stack: what a person types, as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack
from tests.support.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

pytestmark = pytest.mark.e2e

SKYCLASS = str(Path(sys.executable).with_name("skyclass"))


def _run(stack: RunningStack, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {"SKYCLASS_API_URL": stack.api, "AWS_ENDPOINT_URL": stack.endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([SKYCLASS, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _folder(root: Path, per_class: int, first: int) -> dict[str, str]:
    """Held-out images in nested folders; returns file name -> true label."""
    truth = {}
    for label in CLASSES:
        folder = root / "photos" / label.split("_")[1]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = f"{label} {i}.jpg"
            (folder / name).write_bytes(image_bytes(label, HELD_OUT_SEED + first + i))
            truth[name] = label
    return truth


def test_classify_a_folder_prints_every_label_and_exits_zero(local_stack, tmp_path):
    # GIVEN a folder tree of held-out images
    truth = _folder(tmp_path, per_class=3, first=500)
    # WHEN a person classifies it with --json
    done = _run(local_stack, "classify", str(tmp_path / "photos"), "--json")
    # THEN every image comes back with its true label, and the exit code says all went well
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["name"]: r["label"] for r in results} == truth


def test_classify_exits_non_zero_when_an_image_fails(local_stack, tmp_path):
    (tmp_path / "good.jpg").write_bytes(image_bytes("red_disc", HELD_OUT_SEED + 600))
    (tmp_path / "broken.jpg").write_bytes(b"this is text, not a JPEG")
    done = _run(local_stack, "classify", str(tmp_path), "--csv", "--out",
                str(tmp_path / "out.csv"))
    assert done.returncode == 1
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[1].startswith("broken.jpg,failed,") and rows[2].startswith("good.jpg,done,red_disc")


def test_drop_folder_and_status_from_the_cli(local_stack, tmp_path):
    truth = _folder(tmp_path, per_class=1, first=700)
    done = _run(local_stack, "drop", str(tmp_path / "photos"), "--prefix", "cli drop",
                "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    for name, label in truth.items():
        assert any(name in line and label in line for line in done.stdout.splitlines())
    status = _run(local_stack, "status")
    assert status.returncode == 0 and "workers:" in status.stdout
