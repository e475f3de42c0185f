"""The operations layer: provisioning, deploy, bake, teardown, the local stack and the CLI
(see skyclass/__init__.py). It may import the runtime; the runtime never imports it."""
