"""The CLI against the real local stack: what a person types, as separate processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from testbed.ports import free_port
from testbed.stack_process import SKYCLASS
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes
from tests.support.stack import STACK_API_KEY, run_cli

pytestmark = pytest.mark.e2e


def _folder(root: Path, per_class: int, first: int) -> dict[str, str]:
    """Held-out images in nested folders under ``root/photos``; returns each one's path
    inside that folder (its name in the results) -> true label."""
    truth = {}
    for label in CLASSES:
        folder = root / "photos" / label.split("_")[1]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = f"{label} {i}.jpg"
            (folder / name).write_bytes(image_bytes(label, HELD_OUT_SEED + first + i))
            truth[f"{folder.name}/{name}"] = label
    return truth


def test_classify_a_folder_prints_every_label_and_exits_zero(local_stack, tmp_path):
    # GIVEN a folder tree of held-out images
    truth = _folder(tmp_path, per_class=3, first=500)
    # WHEN a person classifies it with --json
    done = run_cli(local_stack, "classify", str(tmp_path / "photos"), "--json")
    # THEN every image comes back with its true label, and the exit code says all went well
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["name"]: r["label"] for r in results} == truth


def test_classify_exits_non_zero_when_an_image_fails(local_stack, tmp_path):
    (tmp_path / "good.jpg").write_bytes(image_bytes("red_disc", HELD_OUT_SEED + 600))
    (tmp_path / "broken.jpg").write_bytes(b"this is text, not a JPEG")
    done = run_cli(local_stack, "classify", str(tmp_path), "--csv", "--out",
                str(tmp_path / "out.csv"))
    assert done.returncode == 1
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[1].startswith("broken.jpg,failed,") and rows[2].startswith("good.jpg,done,red_disc")


def test_drop_folder_and_status_from_the_cli(local_stack, tmp_path):
    truth = _folder(tmp_path, per_class=1, first=700)
    done = run_cli(local_stack, "drop", str(tmp_path / "photos"), "--prefix", "cli drop",
                "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    for name, label in truth.items():
        assert any(name in line and label in line for line in done.stdout.splitlines())
    status = run_cli(local_stack, "status")
    assert status.returncode == 0 and "workers:" in status.stdout


def test_open_shows_the_page_of_a_job_in_the_browser(local_stack, tmp_path):
    # GIVEN a "browser" that notes the URL it is asked to open ($BROWSER, as webbrowser reads it)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > "{opened}"\n')
    browser.chmod(0o755)
    # WHEN a person opens the page of a job
    done = run_cli(local_stack, "open", "--job", "0123456789abcdef0123", BROWSER=str(browser))
    # THEN the browser got the job's URL, which the command also printed, and it is the page
    url = f"{local_stack.api}/?job=0123456789abcdef0123"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == url and opened.read_text().strip() == url
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and '<input id="files" type="file"' in page.text


def test_open_says_plainly_when_nothing_answers(tmp_path):
    done = subprocess.run([str(SKYCLASS), "open", "--api", f"http://127.0.0.1:{free_port()}"],
                          env={"PATH": "/usr/bin:/bin", "BROWSER": "/bin/false"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "nothing answers at http://127.0.0.1:" in done.stderr and "skyclass up" in done.stderr


def test_classify_sends_the_key_a_stage_wants(keyed_stack, tmp_path):
    # GIVEN a stage that wants an API key, and a folder of images
    truth = _folder(tmp_path, per_class=1, first=950)
    photos = str(tmp_path / "photos")
    # WHEN a person classifies it with the key in SKYCLASS_API_KEY
    done = run_cli(keyed_stack, "classify", photos, "--json", SKYCLASS_API_KEY=STACK_API_KEY)
    # THEN the CLI sent it (x-api-key): every image comes back with its label
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["name"]: json.loads(line)["label"]
            for line in done.stdout.splitlines()} == truth
    # AND without the key, or with a wrong one, the CLI says the API refused it, and why
    for env in ({}, {"SKYCLASS_API_KEY": "not-the-key"}):
        refused = run_cli(keyed_stack, "classify", photos, **env)
        assert refused.returncode != 0 and refused.stdout == ""
        assert "403" in refused.stderr and "x-api-key" in refused.stderr
