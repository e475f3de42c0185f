"""What a model's engine cache holds, and how it is read and written safely.

In ``<cache>/`` (``source.ModelSource.cache_dir``), per model:

- ``conversion.json``: the model's input size and class count, and per converted engine
  its file or the error that stopped the conversion, with the package versions that
  made it (a conversion by other versions is made again);
- ``agreement-inputs.npy`` and ``reference.npy``: the fixed inputs and TensorFlow's fp32
  scores for them, so an engine's agreement can be checked without TensorFlow;
- ``openvino/``, ``onnxruntime/``: the converted models;
- ``machine-<key>.json``: what was found on one kind of machine (its CPU, the package
  versions, the precision and batch sizes asked for): each engine's precision,
  agreement and measured speed, and ``auto``'s choice with its reason.

Several workers may start at once on one machine (locally, or a bake racing a start):
whoever prepares a cache holds its lock, and every file is written whole (written
aside, then renamed), so a reader sees the old file or the new one, never a half.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

CONVERSION = "conversion.json"
INPUTS = "agreement-inputs.npy"
REFERENCE = "reference.npy"
_LOCK = ".lock"
# Changes whenever how engines are run, checked or measured changes, so a record made
# the old way is not taken for this one.
RECORD_FORMAT = "3"
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "openvino": ("openvino",),
    "onnxruntime": ("onnxruntime",),
    "tf2onnx": ("tf2onnx",),
}


def version(package: str) -> str | None:
    """The installed version of ``package`` (a key of ``_DISTRIBUTIONS``), or None."""
    for distribution in _DISTRIBUTIONS[package]:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def cpu_description(cpuinfo: str) -> dict[str, Any]:
    """The CPU as far as engine speed goes: model name, the SIMD flags engines use,
    the number of processors."""
    lines = cpuinfo.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")), platform.processor() or "unknown")
    flags = next((line.split(":", 1)[1].split() for line in lines
                  if line.startswith("flags")), [])
    return {"model": name, "flags": [flag for flag in _CPU_FLAGS if flag in flags],
            "cpus": sum(1 for line in lines if line.startswith("processor")) or os.cpu_count()}


def machine_key(cpu: dict[str, Any], precision: str, batch_sizes: Iterable[int]) -> str:
    """A short name for one kind of machine and what was asked of it."""
    facts = {"format": RECORD_FORMAT, "cpu": cpu, "precision": precision,
             "batch_sizes": sorted(set(batch_sizes)),
             "versions": {package: version(package) for package in _DISTRIBUTIONS}}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


class EngineCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.directory / name).read_text())
        except (OSError, ValueError):
            return None

    def write(self, name: str, data: dict[str, Any]) -> None:
        self._replace(name, json.dumps(data, indent=1, sort_keys=True).encode())

    def read_array(self, name: str) -> np.ndarray | None:
        try:
            return np.load(self.directory / name, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def write_array(self, name: str, array: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        aside = self.directory / f".{name}.{os.getpid()}.npy"
        np.save(aside, array, allow_pickle=False)
        aside.replace(self.directory / name)

    def path(self, relative: str) -> Path:
        return self.directory / relative

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held by whoever converts or measures for this model on this machine."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / _LOCK).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _replace(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        aside = self.directory / f".{name}.{os.getpid()}"
        aside.write_bytes(data)
        aside.replace(self.directory / name)


def machine_record_name(key: str) -> str:
    return f"machine-{key}.json"
