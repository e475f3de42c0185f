"""``make bench``: every benchmark in turn, each printing its own figures."""

import runpy
import sys

BENCHMARKS = ["bench.simulate", "bench.stack_classify", "bench.burst",
              "bench.engine", "bench.stack_drain", "bench.latency", "bench.memory",
              "bench.bulk"]

for name in BENCHMARKS:
    print(f"== {name}", flush=True)
    sys.argv = [name]
    runpy.run_module(name, run_name="__main__")
