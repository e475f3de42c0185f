"""Local mode: the whole service on one machine against an embedded AWS emulator.

``stack.up`` (``skyclass up`` / ``make run``) supervises the processes that stand in
for AWS (ARCHITECTURE.md, "Local mode: the embedded AWS"): the emulator
(``emulator``), Chalice's local server for API Gateway, the Lambda service for event
sources (``lambda_host``) and EC2 + systemd for workers (``runner``).
"""
