"""How long ``skyclass classify`` of a folder takes through the real local stack.

    python -m bench.stack_classify [--images 200] [--max-workers 4] [--size 640x480]

Trains (once, cached) the tests' tiny model, writes N held-out JPEGs, starts
``skyclass up`` with that model from an idle fleet, and times ``skyclass classify`` of
the folder as a person would run it: uploads, the S3 events, the cold start of the
first worker, scaling and every result. Prints the timings and the accuracy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench.support import TINY_MODEL_CACHE, model_env, running_stack
from testbed.stack_process import SKYCLASS
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes, train_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--max-workers", type=int, default=4)
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
            began = time.monotonic()
            done = subprocess.run(
                [str(SKYCLASS), "classify", str(folder), "--json", "--api", bench.stack.api],
                capture_output=True, text=True, timeout=1800,
            )
            classify_s = time.monotonic() - began
        total_s = time.monotonic() - started
    results = [json.loads(line) for line in done.stdout.splitlines()]
    right = sum(r["label"] == truth.get(r["name"]) for r in results)
    workers = {r["worker"] for r in results}
    print(f"images                 {args.images} JPEG {width}x{height}, tiny model "
          f"{model.input_size[1]}x{model.input_size[0]}")
    print(f"stack up to /health    {ready_s:.1f} s")
    print(f"skyclass classify      {classify_s:.1f} s  ({args.images / classify_s:.1f} images/s,"
          f" exit {done.returncode}, from an idle fleet, {len(workers)} worker(s) used)")
    print(f"correct labels         {right}/{args.images}")
    print(f"whole run              {total_s:.1f} s")


if __name__ == "__main__":
    main()
