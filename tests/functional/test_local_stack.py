"""Starting the local stack when it cannot start: a clear message, nothing left behind."""

from __future__ import annotations

import socket

import psutil

from skyclass.operations.local.stack import up


def test_up_refuses_a_port_that_is_taken(capsys):
    # GIVEN something already listening on the emulator's port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        children_before = psutil.Process().children(recursive=True)
        # WHEN the stack is asked to use it
        code = up(api_port=0, aws_port=port, max_workers=1, boot_delay=0)
    # THEN it exits with an error that names the port and the option to change it
    out = capsys.readouterr().out
    assert code == 2
    assert f"port {port}" in out and "--aws-port" in out
    # AND it started no process
    assert psutil.Process().children(recursive=True) == children_before
