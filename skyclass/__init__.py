"""skyclass: elastic image classification on AWS, in two layers.

- ``skyclass.runtime``: what runs in AWS. The Lambdas (chalice_app/) and the EC2
  workers (ec2_worker/) import only this: contracts, settings, names, the queue, the
  stores, metrics, input policy, jobs, ingest and the fleet. It needs boto3 and the
  standard library only, and it is all the Lambda package carries (vendor/skyclass).
- ``skyclass.operations``: what puts it there and runs it elsewhere, on an operator's
  machine or CI: provisioning, deploy, teardown, the local stack and its emulator, the
  CLI and its API client. ami_build/ belongs to this layer too.

One rule: the runtime never imports the operations layer (tests/unit/test_layers.py).
"""

__version__ = "0.1.0"
