"""End-to-end tier: the real local stack as processes. The session's stacks
(``local_stack``, ``keyed_stack``) are started in tests/conftest.py, so the browser
tier shares them; what the tests drive them with is tests/support/stack.py."""
