"""The local stand-in for API Gateway + the route Lambdas: Chalice's own local server,
with a listen backlog that takes a burst.

``chalice local`` serves with Python's ``HTTPServer``, whose listen backlog is 5: a
burst of 100 concurrent clients (the classic workload generator) then gets connections
reset, which API Gateway never does. This module starts the same ``LocalDevServer`` the
way ``chalice local --no-autoreload`` does (same config loading, same stage environment,
same route validation), only with a server class that queues up to 1024 connections.

    python -m skyclass.operations.local.api_server --stage local --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from chalice import local as chalice_local
from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes

from skyclass.operations.project import PROJECT_DIR

# As the Lambda host's and the workers' lines: time first (skyclass logs orders by it).
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


class GatewayServer(chalice_local.ThreadedHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


def serve(stage: str, host: str, port: int, project_dir: Path = PROJECT_DIR) -> None:
    factory = CLIFactory(str(project_dir), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app
    validate_routes(app.routes)
    # Chalice's app logger writes without a time; the log shipper orders lines by theirs.
    for handler in app.log.handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    # What chalice.local.create_local_server does, so the app runs as under `chalice local`.
    chalice_local.CustomLocalChalice.__bases__ = (chalice_local.LocalChalice, app.__class__)
    app.__class__ = chalice_local.CustomLocalChalice
    server = chalice_local.LocalDevServer(app, config, host, port, server_cls=GatewayServer)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=LOG_FORMAT)
    serve(args.stage, args.host, args.port)


if __name__ == "__main__":
    main()
