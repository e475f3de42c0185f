"""How long ``skyclass classify`` of a folder takes through the real local stack, and where
its backlog waits.

    python -m bench.stack_classify [--images 200] [--max-workers N] [--size 640x480]

Trains (once, cached) the tests' tiny model, writes N held-out JPEGs, starts
``skyclass up`` with that model from an idle fleet (sized to this machine unless
``--max-workers`` says), and times ``skyclass classify`` of the folder as a person
would run it: uploads, the S3 events, the cold start of the first worker, scaling and
every result. Prints the timings and the accuracy, and, sampled every second, where the
backlog waited: S3 events the local bridge had not yet ingested, against the work queue
(the workers' backlog). The bridge and ingest keep up if the work queue holds the
backlog. Also: whether a worker was stopped before the last result, each worker's drain
rate (its results over its busy span, from ``finished_at``) beside the whole run's
images/s, and the CPU seconds and emulator requests the ingest cost per image.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from bench.support import (
    TINY_MODEL_CACHE,
    BenchStack,
    StackLog,
    cpu_flags,
    model_env,
    running_stack,
    worker_timeline,
)
from testbed.stack_process import SKYCLASS
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes, train_tiny_model


class Sampler:
    """Every ``period`` seconds: (seconds since start, S3 events waiting, work queued)."""

    def __init__(self, stack: BenchStack, period: float = 1.0) -> None:
        self._stack = stack
        self._period = period
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.samples.append((time.monotonic() - self._started,
                                     self._stack.events_waiting(), self._stack.queued()))
            except Exception:  # the stack is going down
                return


def _finished(result: dict) -> float:
    return datetime.fromisoformat(result["finished_at"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--max-workers", type=int, help="default: sized to this machine")
    parser.add_argument("--size", default="640x480", help="image size WxH")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    model = train_tiny_model(TINY_MODEL_CACHE)
    with tempfile.TemporaryDirectory(prefix="skyclass-bench-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        truth = {}
        for i in range(args.images):
            label = CLASSES[i % len(CLASSES)]
            name = f"{i:05d}-{label}.jpg"
            (folder / name).write_bytes(
                image_bytes(label, HELD_OUT_SEED + 20_000 + i, size=(width, height)))
            truth[name] = label
        env = model_env(model.model_path, model.labels_path)
        started = time.monotonic()
        with running_stack(env, max_workers=args.max_workers) as bench:
            ready_s = time.monotonic() - started
            log = StackLog(bench.stack)
            sampler = Sampler(bench)
            cpu_before, requests_before = bench.cpu_seconds(), bench.emulator_requests()
            began = time.monotonic()
            done = subprocess.run(
                [str(SKYCLASS), "classify", str(folder), "--json", "--api", bench.stack.api],
                capture_output=True, text=True, timeout=3600,
            )
            classify_s = time.monotonic() - began
            cpu_after, requests_after = bench.cpu_seconds(), bench.emulator_requests()
            sampler.close()
            log.close()
            fleet = bench.stack.get("/fleet").json()
        total_s = time.monotonic() - started
    results = [json.loads(line) for line in done.stdout.splitlines()]
    right = sum(r["label"] == truth.get(r["name"]) for r in results)
    by_worker: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_worker[r["worker"]].append(_finished(r))
    print(f"machine                {os.cpu_count()} cores, {cpu_flags()}")
    print(f"images                 {args.images} JPEG {width}x{height}, tiny model "
          f"{model.input_size[1]}x{model.input_size[0]}")
    print(f"fleet                  {(fleet.get('limits') or {}).get('note')}")
    print(f"stack up to /health    {ready_s:.1f} s")
    print(f"skyclass classify      {classify_s:.1f} s  ({args.images / classify_s:.1f} images/s,"
          f" exit {done.returncode}, from an idle fleet, {len(by_worker)} worker(s) used)")
    for worker, times in sorted(by_worker.items()):
        times.sort()
        span = times[-1] - times[0]
        rate = f"{(len(times) - 1) / span:.1f} images/s" if span > 0 else "-"
        print(f"  worker {worker}  {len(times)} images over {span:.1f} s: drain {rate}")
    print(f"correct labels         {right}/{args.images}")
    samples = sampler.samples
    if samples:
        bridge_ahead = [s for s in samples if s[1] > max(s[2], 10)]
        print(f"backlog, sampled       {len(samples)} samples: S3 events waiting for ingest "
              f"max {max(s[1] for s in samples)}, work queue max {max(s[2] for s in samples)};"
              f" the bridge held more than the work queue (and over 10) in "
              f"{len(bridge_ahead)} of them"
              + (f", from {bridge_ahead[0][0]:.0f} s to {bridge_ahead[-1][0]:.0f} s"
                 if bridge_ahead else ""))
        step = max(1, len(samples) // 12)
        print("  (s: events, work)    " + "  ".join(
            f"{at:.0f}: {events}, {work}" for at, events, work in samples[::step]))
    last_result = max((t for times in by_worker.values() for t in times), default=None)
    events = log.workers()
    starts, stops, peak = worker_timeline(events)
    to_wall = time.time() - time.monotonic()  # the log's monotonic stamps as epoch seconds
    early = [e for e in events if e.kind == "stopping" and last_result is not None
             and e.at + to_wall < last_result]
    print(f"workers                {starts} started, {stops} stopped, peak {peak}; stopped "
          f"before the last result: {len(early)}")
    cpu = {role: cpu_after[role] - cpu_before[role] for role in cpu_after}
    emulator = {k: requests_after.get(k, 0) - requests_before.get(k, 0) for k in requests_after}
    print("CPU ms per image       " + ", ".join(
        f"{role} {1000 * sec / args.images:.1f}" for role, sec in cpu.items())
          + " (other: the API, the Lambda host with the bridge and ingest, the supervisor)")
    print(f"emulator requests      {emulator.get('total', 0) / args.images:.1f} per image ("
          + ", ".join(f"{k} {v / args.images:.1f}" for k, v in sorted(emulator.items())
                      if k != "total") + ")")
    print(f"whole run              {total_s:.1f} s")


if __name__ == "__main__":
    main()
