"""Creating a stage's resources, the same code for AWS (``skyclass bootstrap``) and the
local emulator (``skyclass up``): buckets, queues and the worker pool (``stage``), what
the workers launch with (``workers``), least-privilege policies (``iam``) and the API
key (``api_key``)."""
