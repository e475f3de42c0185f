"""A TCP port on 127.0.0.1 that nothing listens on now."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel just handed out and released; free unless something takes it
    before its user binds it (good enough for tests on one machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
