"""A local DynamoDB for Paracell's tests: moto's server (pinned in requirements.txt) with one fix.

moto's server handles requests on many threads and its DynamoDB backend takes no lock, so two
concurrent `TransactWriteItems` can both pass their condition checks before either writes: 50
racing debits on 20.00 booked 22 in our store contract. The real service is serialisable per item.
This launcher serves moto's own WSGI application with every request applied under one lock
(connections are still accepted on many threads), which makes each request atomic and isolated.

Usage: python server.py --host 127.0.0.1 --port 5001
"""

import argparse
import os
import signal
import sys
import threading
from importlib.metadata import version

PINNED = "5.2.5"
if version("moto") != PINNED:
    sys.exit(f"dynamodb server: written for moto {PINNED}, found {version('moto')}")

from werkzeug.serving import run_simple  # noqa: E402

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5001)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    moto = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serialised(environ, start_response):
        with one_at_a_time:
            # moto builds whole responses, so materialising the body under the lock costs nothing.
            return list(moto(environ, start_response))

    run_simple(
        args.host,
        args.port,
        serialised,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
