"""The CLI's pure parts: finding images and rendering results."""

import csv
import io
import json

from skyclass.operations.cli import build_parser
from skyclass.operations.cli.classify import find_images, render_results
from skyclass.operations.cli.fleet import render_fleet
from skyclass.operations.cli.web import page_url


def _result(name, status="done", label="cat", score=0.9, error=None):
    return {"image_id": f"id-{name}", "name": name, "status": status, "label": label,
            "score": score, "error": error,
            "top": [{"label": label, "wnid": None, "score": score}] if status == "done" else []}


def test_folders_are_searched_for_images_and_other_files_reported(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"1")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    (tmp_path / "y.png").write_bytes(b"2")
    (tmp_path / "z.txt").write_text("named directly")
    images, skipped = find_images([tmp_path / "a", tmp_path / "y.png", tmp_path / "z.txt",
                                   tmp_path / "missing"])
    assert [(i.name, i.content_type) for i in images] == [("x.jpg", "image/jpeg"),
                                                          ("y.png", "image/png")]
    assert [p.name for p, _ in skipped] == ["z.txt", "missing"]


def test_images_in_subfolders_are_named_by_their_path_so_same_names_stay_apart(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "photos" / sub).mkdir(parents=True)
        (tmp_path / "photos" / sub / "x.jpg").write_bytes(b"1")
    images, _ = find_images([tmp_path / "photos", tmp_path / "photos" / "a" / "x.jpg"])
    assert [i.name for i in images] == ["a/x.jpg", "b/x.jpg", "x.jpg"]


def test_results_render_as_table_json_and_csv():
    results = [_result("b.jpg"), _result("a.jpg", status="failed", label=None, score=None,
                                         error="not an image")]
    table = render_results(results)
    assert table.index("a.jpg") < table.index("b.jpg") and "FAILED: not an image" in table
    lines = render_results(results, as_json=True).splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["a.jpg", "b.jpg"]
    rows = list(csv.DictReader(io.StringIO(render_results(results, as_csv=True))))
    assert rows[1]["label"] == "cat" and rows[0]["error"] == "not an image"


def test_fleet_renders_backlog_and_instances():
    text = render_fleet({"queue": {"visible": 5, "in_flight": 2, "dead_letter": 1},
                         "instances": [{"id": "i-1", "state": "running", "uptime_s": 12.0}],
                         "last_decision": {"reason": "backlog 7 needs 1 worker"}})
    assert "5 visible" in text and "i-1  running up 12s" in text and "needs 1 worker" in text


def test_the_page_url_keeps_a_stage_prefix_and_names_the_jobs():
    assert page_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/"
    assert page_url("https://abc.execute-api.us-east-1.amazonaws.com/api/", ["j1", "j2"]) == (
        "https://abc.execute-api.us-east-1.amazonaws.com/api/?job=j1&job=j2")


def test_open_is_a_command_that_takes_the_api_and_jobs():
    args = build_parser().parse_args(["open", "--api", "http://h:1/api", "--job", "j1"])
    assert (args.api, args.job) == ("http://h:1/api", ["j1"])


def test_the_table_lists_as_many_labels_as_asked_for():
    result = _result("a.jpg")
    result["top"] = [{"label": "cat", "wnid": None, "score": 0.9},
                     {"label": "lynx", "wnid": None, "score": 0.05}]
    assert "cat, lynx" in render_results([result], top=2)
    assert "lynx" not in render_results([result], top=1)
