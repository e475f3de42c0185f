"""The EC2 worker: SQS consumer, image decoding, model loading, batched inference,
result writing (ARCHITECTURE.md, "Data flow"). Run it with ``python -m ec2_worker``."""
