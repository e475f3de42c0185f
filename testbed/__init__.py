"""What the tests and the benchmarks both stand skyclass on: the tiny model they train
and the images it is trained and judged on (``tiny_model``), a free port (``ports``),
and ``skyclass up`` driven as a child process (``stack_process``).

Only tests/ and bench/ import it. It is neither a test module (so bench/ need not import
tests/) nor shipped: the wheel, the Lambda zip (vendor/ carries skyclass/runtime only)
and the AMI's sources (ami_build/bake.py's SOURCES) leave it out, and the runtime never
imports it (tests/unit/test_layers.py).
"""
