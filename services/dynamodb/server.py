"""A local DynamoDB for Paracell's tests: moto's server (pinned in requirements.txt) with two fixes.

1. moto's server handles requests on many threads and its DynamoDB backend takes no lock, so two
   concurrent `TransactWriteItems` can both pass their condition checks before either writes: 50
   racing debits on 20.00 booked 22 in our store contract. The real service is serialisable per
   item. This launcher serves moto's own WSGI application with every request applied under one lock
   (connections are still accepted on many threads), which makes each request atomic and isolated.
2. Before every `TransactWriteItems`, moto deep-copies each table it touches, stream records
   included, and on cancellation replaces the table with that copy: every shard iterator a stream
   reader holds then points at the old shard and never sees another record (the replication
   drill's stream reader stalled after the first refused commit), and the copies of the stream
   grow without bound (tens of GB over a drill). The real service keeps one stream. Here the copy
   shares the table's stream shard, and a cancelled transaction's records are removed from it.

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

from moto.dynamodb.models import DynamoDBBackend  # noqa: E402
from moto.dynamodb.models.table import StreamShard  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_keeping_streams(self, transact_items):
    """Fix 2: a cancelled transaction leaves each table's stream shard in place."""
    shards = {}
    for item in transact_items:
        _, op = next(iter(item.items()))
        name = op.get("TableName")
        table = self.tables.get(name) if name else None
        if table is not None and table.stream_shard is not None and name not in shards:
            shards[name] = (table.stream_shard, len(table.stream_shard.items))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for name, (shard, length) in shards.items():
            del shard.items[length:]
            restored = self.tables.get(name)
            if restored is not None:
                restored.stream_shard = shard
        raise


# A table copied for a rollback shares its stream shard instead of copying it.
StreamShard.__deepcopy__ = lambda self, memo: self
DynamoDBBackend.transact_write_items = _transact_write_items_keeping_streams


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
