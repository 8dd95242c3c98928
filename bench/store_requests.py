"""Database requests per answer and create latency, through the local-cell binary on the DynamoDB
and Cosmos DB stand-ins (services/), which count the requests they serve by table or container and
operation (GET /_paracell/requests). Needs the stand-ins' settings in the environment: run it under
scripts/dev-services.sh (bench/run.sh does).

    scripts/dev-services.sh python3 bench/store_requests.py [--quick] [--binary PATH] [--out FILE]

Prints and writes (default bench/out/store-requests.json) for each store: the requests of a create,
a replay, a GET and a refused debit, and the p50/p99 of sequential creates (a fresh key each, one
tenant and account, one client on loopback).
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "--quick" in sys.argv


def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


BINARY = option("--binary", os.path.join(ROOT, "target", "release", "local-cell"))
OUT = option("--out", os.path.join(ROOT, "bench", "out", "store-requests.json"))
CREATES = 20 if QUICK else 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local-cell exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, method, path, body=None, key=None):
        headers = {"X-Tenant-ID": "coop-1"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = key
            body = json.dumps(body).encode()
        self.conn.request(method, path, body=body, headers=headers)
        reply = self.conn.getresponse()
        return reply.status, reply.getheader("Location"), reply.read()


def create(kind, amount):
    return {"account_id": "ACC-1", "type": kind, "amount": amount, "currency": "EUR"}


def measure(store, counter, env):
    def counts():
        with urllib.request.urlopen(counter) as reply:
            return json.load(reply)

    def cost(before):
        after = counts()
        return {op: n - before.get(op, 0) for op, n in sorted(after.items()) if n - before.get(op, 0)}

    port = free_port()
    # The cell's log (failures explain themselves there), next to the results.
    log = open(os.path.join(os.path.dirname(OUT), f"local-cell-{store}.log"), "w")
    proc = subprocess.Popen([BINARY], env={**os.environ, **env, "PORT": str(port), "PARACELL_CELL_ID": "cell-bench",
                                           "PARACELL_TENANTS": "*", "PARACELL_STORE": store, "PARACELL_STORE_PROVISION": "1",
                                           "RUST_LOG": "warn"},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        client = Client(port)
        status, _, body = client.send("POST", "/v1/transactions", create("credit", "1000.00"), "fund")
        assert status == 201, body
        latencies = []
        for n in range(CREATES):
            started = time.perf_counter()
            status, location, body = client.send("POST", "/v1/transactions", create("credit", "1.00"), f"c-{n}")
            latencies.append(time.perf_counter() - started)
            assert status == 201, body
        result = {}
        before = counts()
        status, location, body = client.send("POST", "/v1/transactions", create("credit", "1.00"), "one")
        assert status == 201, body
        result["create"] = cost(before)
        before = counts()
        status, _, body = client.send("POST", "/v1/transactions", create("credit", "1.00"), "one")
        assert status == 201, body
        result["replay"] = cost(before)
        before = counts()
        status, _, body = client.send("GET", location)
        assert status == 200, body
        result["get"] = cost(before)
        before = counts()
        status, _, body = client.send("POST", "/v1/transactions", create("debit", "99999.00"), "too-much")
        assert status == 409, body
        result["refused_debit"] = cost(before)
        latencies.sort()
        result["creates"] = CREATES
        result["create_p50_ms"] = round(statistics.median(latencies) * 1000, 2)
        result["create_p99_ms"] = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2)
        return result
    finally:
        proc.kill()
        proc.wait()
        log.close()


def main():
    suffix = f"{os.getpid()}-{int(time.time())}"
    dynamo = os.environ["PARACELL_DYNAMODB_ENDPOINT"]
    cosmos = os.environ["PARACELL_COSMOS_ENDPOINT"]
    table, container = f"bench-{suffix}", f"bench-{suffix}"
    results = {
        "binary": BINARY,
        "dynamodb": measure("dynamodb", f"{dynamo}/_paracell/requests?table={table}", {"PARACELL_DYNAMODB_TABLE": table}),
        "cosmos": measure("cosmos", f"{cosmos}/_paracell/requests?container={container}", {"PARACELL_COSMOS_CONTAINER": container}),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
