"""``python -m ec2_worker.engines``: prepare the engine cache ahead of the first start.

The AMI bake runs it for the default model (``ami_build/provision.sh``): it converts the
model, checks each conversion's agreement and measures the engines on the bake machine,
for each precision and the batch sizes the worker warms up for, exactly as a worker
with ``SKYCLASS_ENGINE=auto`` would at its first start, and prints what ``auto`` chose
and why. A worker on the same kind of machine then starts from the record without
TensorFlow; on another CPU it measures again at its first start. It always measures
afresh (conversions are kept): run it again on a quiet machine if a first start
measured while the machine was busy.

    python -m ec2_worker.engines [--precisions fp32,bf16] [--batch-sizes 1,32]

The model is ``SKYCLASS_MODEL``/``SKYCLASS_LABELS`` as for the worker. Exits 2 if the
model cannot be loaded; an engine that cannot be used is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ec2_worker.engine import BF16, FP32  # noqa: E402
from ec2_worker.engines import AUTO  # noqa: E402
from ec2_worker.engines.build import build_engine, forget_measurement  # noqa: E402
from ec2_worker.engines.runtimes import cpu_bf16_reason  # noqa: E402
from skyclass.runtime.errors import SkyclassError  # noqa: E402
from skyclass.runtime.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default=f"{FP32},{BF16}",
                        help="bf16 is skipped on a CPU without it")
    parser.add_argument("--batch-sizes", default=None,
                        help="default: 1 and SKYCLASS_BATCH_SIZE, as the worker warms up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        settings = Settings.from_env(engine=AUTO)
        sizes = ({int(size) for size in args.batch_sizes.split(",")} if args.batch_sizes
                 else {1, settings.batch_size})
        for precision in args.precisions.split(","):
            if precision == BF16 and cpu_bf16_reason():
                print(f"{BF16}: not prepared, {cpu_bf16_reason()}")
                continue
            settings = settings.replace(precision=precision)
            forget_measurement(settings, sizes)  # this machine now, not a record of it
            _, report = build_engine(settings, gpu=False, batch_sizes=sizes)
            print(f"{precision}: {report.summary()}")
            print(json.dumps(report.measured, indent=1, sort_keys=True))
    except SkyclassError as exc:
        print(f"cannot prepare the engines: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
