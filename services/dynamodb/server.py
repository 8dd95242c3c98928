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

It also counts the DynamoDB requests it serves, by table and operation (`X-Amz-Target`), so tests
can assert how many round trips an operation of the store takes: `GET /_paracell/requests?table=T`
answers `{"GetItem": 3, "TransactWriteItems": 1, ...}` for table T since the server started. A
request that touches several tables (a transaction) counts once for each.

Usage: python server.py --host 127.0.0.1 --port 5001
"""

import argparse
import io
import json
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


class RequestCounts:
    """DynamoDB requests served, by table and operation."""

    PREFIX = "DynamoDB_20120810."

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def record(self, environ) -> None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(self.PREFIX):
            return  # streams, SQS, EventBridge, moto's own API
        operation = target[len(self.PREFIX) :]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        try:
            for table in self.tables(json.loads(body or b"{}")):
                per_table = self.counts.setdefault(table, {})
                per_table[operation] = per_table.get(operation, 0) + 1
        except ValueError:
            pass  # moto answers the malformed request itself

    @staticmethod
    def tables(request: dict) -> set[str]:
        names = set()
        if isinstance(request.get("TableName"), str):
            names.add(request["TableName"])
        for item in request.get("TransactItems") or []:
            for operation in item.values():
                if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                    names.add(operation["TableName"])
        names.update((request.get("RequestItems") or {}).keys())
        return names

    def answer(self, environ, start_response):
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        body = json.dumps(self.counts.get(query.get("table", ""), {}), sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5001)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    moto = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()
    counts = RequestCounts()

    def serialised(environ, start_response):
        with one_at_a_time:
            if environ.get("PATH_INFO") == "/_paracell/requests":
                return counts.answer(environ, start_response)
            counts.record(environ)
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
