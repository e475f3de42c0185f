"""The embedded AWS: moto's server (S3, SQS, EC2, CloudWatch, IAM, STS) on one port.

Runs in the foreground until SIGINT or SIGTERM. Everything else reaches it through
``AWS_ENDPOINT_URL``; its state lives in memory, so each start is a fresh account.
Known emulator gaps are worked around by callers as ARCHITECTURE.md lists them
(lower-case S3 filter rule names, the ``s3:TestEvent`` message, S3 → Lambda through
the local bridge); nothing here changes moto's behaviour.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from types import FrameType

from skyclass.errors import SkyclassError

DEFAULT_PORT = 4566


class PortInUseError(SkyclassError):
    """The emulator's port is taken, most likely by another running stack."""

    code = "PortInUse"


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
    """Serve the emulator on ``host:port`` until SIGINT or SIGTERM."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # Checked here because werkzeug answers a taken port with sys.exit(1).
    if not port_is_free(host, port):
        raise PortInUseError(f"port {port} on {host} is already in use; pick another with --port")
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    # One line per request (the runner alone polls EC2 three times a second) would
    # bury anything worth reading in the emulator's log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print(f"AWS emulator (moto) listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded AWS emulator (moto).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        serve(args.port, args.host)
    except PortInUseError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
