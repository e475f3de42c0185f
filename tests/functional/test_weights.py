"""Fetching the ResNet-50 weights: checked, atomic, and plain about failure.
(File URLs and a closed local port stand in for the download; no network.)"""

import hashlib

import pytest

from ec2_worker.weights import fetch_resnet50_weights
from skyclass.runtime.errors import ModelUnavailableError


def test_a_download_with_the_right_checksum_lands_in_place(tmp_path):
    source = tmp_path / "served.h5"
    source.write_bytes(b"weights" * 1000)
    dest = tmp_path / "keras" / "models" / "w.h5"
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert fetch_resnet50_weights(dest, url=source.as_uri(), md5=md5) == dest
    assert dest.read_bytes() == source.read_bytes()


def test_a_wrong_checksum_leaves_no_file(tmp_path):
    source = tmp_path / "served.h5"
    source.write_bytes(b"not the weights")
    dest = tmp_path / "w.h5"
    with pytest.raises(ModelUnavailableError, match="checksum"):
        fetch_resnet50_weights(dest, url=source.as_uri(), md5="0" * 32)
    assert list(tmp_path.iterdir()) == [source]


def test_an_unreachable_server_names_the_file_it_wanted(tmp_path):
    dest = tmp_path / "w.h5"
    with pytest.raises(ModelUnavailableError) as err:
        fetch_resnet50_weights(dest, url="http://127.0.0.1:9/w.h5", timeout=2)
    assert str(dest) in err.value.message and "SKYCLASS_MODEL" in err.value.message
    assert not dest.exists()


def test_a_file_already_there_is_kept(tmp_path):
    dest = tmp_path / "w.h5"
    dest.write_bytes(b"cached")
    assert fetch_resnet50_weights(dest, url="http://127.0.0.1:9/w.h5") == dest
