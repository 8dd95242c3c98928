"""Out-of-process measurements for BENCHMARKS.md: cold starts, peak RSS across many invocations,
binary sizes, loopback load on azure-cell, plus the criterion and Python in-process numbers.
Run by bench/run.sh (which builds and installs everything first). Writes bench/out/results.{json,md}.
"""
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

QUICK = "--quick" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
EVENTS = os.path.join(ROOT, "bench", "events")
BOOTSTRAP = os.path.join(ROOT, "target", "lambda", "lambda-cell", "bootstrap")
AZURE_CELL = os.path.join(ROOT, "target", "release", "azure-cell")
LOCAL_CELL = os.path.join(ROOT, "target", "release", "local-cell")
EDGE_ROUTER = os.path.join(ROOT, "target", "release", "edge-router")
PYTHON = os.path.join(ROOT, "bench", ".venv", "bin", "python")
PY_DIR = os.path.join(ROOT, "bench", "baselines", "python")
COLD_RUNS = 3 if QUICK else 15
RSS_INVOCATIONS = 1000 if QUICK else 100_000
LOAD_SECONDS = 2 if QUICK else 10
CELL_ENV = {"PARACELL_CELL_ID": "cell-bench", "PARACELL_TENANTS": "*", "RUST_LOG": "error", "PATH": os.environ.get("PATH", "")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"nothing listens on {port}")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def stop(proc):
    proc.kill()
    proc.wait()


def event(name, **subst):
    with open(os.path.join(EVENTS, name + ".json")) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(k, v)
    return text


class Emulator:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(self.port)],
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)
        self.conn = None

    def env(self):
        return {"AWS_LAMBDA_FUNCTION_VERSION": "1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_NAME": "_",
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{self.port}/.rt"}

    def invoke(self, body):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.connect()
            # http.client writes headers and body separately: without this, Nagle meets delayed ACKs.
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.request("POST", "/2015-03-31/functions/_/invocations", body=body.encode(), headers={"Content-Type": "application/json"})
        reply = self.conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"invocation failed: {reply.status} {data[:200]}")
        return json.loads(data)

    def close(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class StubRuntimeApi:
    """The Lambda Runtime API (next / response) served from this process: cargo-lambda's emulator
    adds ~9 ms per invocation here, which would make 100,000 invocations take hours. Used only for
    the memory run; cold starts use the emulator."""

    def __init__(self):
        import http.server
        import queue
        import threading

        self.events, self.results = queue.Queue(), queue.Queue()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = stub.events.get()
                self.send_response(200)
                for k, v in (("Lambda-Runtime-Aws-Request-Id", "req"), ("Lambda-Runtime-Deadline-Ms", "9999999999999"),
                             ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:_"),
                             ("Content-Type", "application/json"), ("Content-Length", str(len(body)))):
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                stub.results.put(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self):
        return {"AWS_LAMBDA_FUNCTION_VERSION": "1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_NAME": "_",
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{self.port}"}

    def invoke(self, body):
        self.events.put(body.encode())
        return json.loads(self.results.get(timeout=60))

    def close(self):
        self.server.shutdown()


def lambda_process(emulator, kind):
    env = dict(CELL_ENV, **emulator.env())
    if kind == "rust":
        return subprocess.Popen([BOOTSTRAP], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen([PYTHON, os.path.join(PY_DIR, "runtime.py"), "app.http_handler"], env=env, cwd=PY_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cold_starts(emulator, kind):
    """exec → first completed invocation (a create through the HTTP API event)."""
    times = []
    for i in range(COLD_RUNS):
        body = event("create-aws-apigw-v2", **{"IDEM-KEY-PLACEHOLDER": f"cold-{i}"})
        start = time.perf_counter()
        proc = lambda_process(emulator, kind)
        reply = emulator.invoke(body)
        times.append((time.perf_counter() - start) * 1000)
        assert reply["statusCode"] == 201, reply
        stop(proc)
    return statistics.median(times)


def rss_over_invocations(emulator, kind):
    """Peak RSS across many GET invocations (plus the create they read), sampled along the way."""
    proc = lambda_process(emulator, kind)
    created = emulator.invoke(event("create-aws-apigw-v2", **{"IDEM-KEY-PLACEHOLDER": "rss"}))
    tx = json.loads(created["body"])["transaction_id"]
    get = event("get-aws-apigw-v2", **{"TX-ID-PLACEHOLDER": tx})
    samples = {}
    checkpoints = {1, RSS_INVOCATIONS // 10, RSS_INVOCATIONS // 2, RSS_INVOCATIONS}
    start = time.perf_counter()
    for i in range(1, RSS_INVOCATIONS + 1):
        reply = emulator.invoke(get)
        if reply["statusCode"] != 200:
            raise RuntimeError(reply)
        if i in checkpoints:
            samples[i] = rss_kib(proc.pid)
    elapsed = time.perf_counter() - start
    peak = rss_kib(proc.pid, "VmHWM")
    stop(proc)
    return {"rss_kib_at": samples, "peak_kib": peak, "invocations": RSS_INVOCATIONS, "seconds": elapsed}


def azure_process(mode, port):
    env = dict(CELL_ENV, FUNCTIONS_CUSTOMHANDLER_PORT=str(port), PARACELL_AZURE_MODE=mode, PARACELL_ROUTE_PREFIX="api")
    return subprocess.Popen([AZURE_CELL], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def call(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, data


def azure_cold_starts():
    """exec → readiness (GET / answered) → first reply to a payload-mode create."""
    times, ready = [], []
    for i in range(COLD_RUNS):
        port = free_port()
        request = json.loads(event("create-azure-payload", **{"IDEM-KEY-PLACEHOLDER": f"cold-{i}"}))
        start = time.perf_counter()
        proc = azure_process("payload", port)
        while True:
            try:
                status, _ = call(port, "GET", "/")
                break
            except OSError:
                time.sleep(0.0005)
        ready.append((time.perf_counter() - start) * 1000)
        status, data = call(port, "POST", request["path"], request["body"].encode(), {"Content-Type": "application/json"})
        times.append((time.perf_counter() - start) * 1000)
        assert status == 200 and json.loads(data)["Outputs"]["res"]["statusCode"] == 201, data
        stop(proc)
    return statistics.median(ready), statistics.median(times)


def wrk(url, script=None, threads=2, connections=32):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{LOAD_SECONDS}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def latency(pct):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"requests": requests, "rps": rps, "p50_ms": latency(50), "p99_ms": latency(99), "errors": errors}


def load(mode):
    port = free_port()
    proc = azure_process(mode, port)
    wait_port(port)
    call(port, "GET", "/")
    if mode == "forwarding":
        create = json.loads(event("create-direct", **{"IDEM-KEY-PLACEHOLDER": "load"}))
        status, data = call(port, "POST", "/api/v1/transactions", create["body"].encode(),
                            {h: v for h, v in create["headers"]})
        tx = json.loads(data)["transaction_id"]
        script, url = None, f"http://127.0.0.1:{port}/api/v1/transactions/{tx}"
        header_lua = os.path.join(OUT, "forwarding.lua")
        with open(header_lua, "w") as f:
            f.write('wrk.headers["X-Tenant-ID"] = "coop-1"\n')
        script = header_lua
    else:
        create = json.loads(event("create-azure-payload", **{"IDEM-KEY-PLACEHOLDER": "load"}))
        status, data = call(port, "POST", create["path"], create["body"].encode(), {"Content-Type": "application/json"})
        tx = json.loads(json.loads(data)["Outputs"]["res"]["body"])["transaction_id"]
        get = json.loads(event("get-azure-payload", **{"TX-ID-PLACEHOLDER": tx}))
        script = os.path.join(OUT, "payload.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json; charset=utf-8"\n')
            f.write("wrk.body = " + json.dumps(get["body"]) + "\n")
        url = f"http://127.0.0.1:{port}{get['path']}"
    before = rss_kib(proc.pid)
    result = wrk(url, script)
    result.update({"rss_before_kib": before, "rss_after_kib": rss_kib(proc.pid), "peak_kib": rss_kib(proc.pid, "VmHWM")})
    stop(proc)
    return result


def edge_load():
    """edge-router in front of local-cell vs local-cell alone: the same GET, one wrk run each."""
    cell_port, edge_port = free_port(), free_port()
    cell = subprocess.Popen([LOCAL_CELL], env={**CELL_ENV, "PORT": str(cell_port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = os.path.join(OUT, "edge-registry.json")
    with open(registry, "w") as f:
        json.dump({"tenants": {"coop-1": {"cell": "cell-bench", "cloud": "aws", "url": f"http://127.0.0.1:{cell_port}", "epoch": 1}}}, f)
    edge = subprocess.Popen([EDGE_ROUTER], env={"PATH": os.environ.get("PATH", ""), "RUST_LOG": "error", "PORT": str(edge_port),
                                                "PARACELL_REGISTRY": f"file:{registry}", "PARACELL_EDGE_PROBE_SECS": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(cell_port)
        wait_port(edge_port)
        create = json.loads(event("create-direct", **{"IDEM-KEY-PLACEHOLDER": "edge-load"}))
        status, data = call(cell_port, "POST", "/v1/transactions", create["body"].encode(), {h: v for h, v in create["headers"]})
        assert status == 201, data
        tx = json.loads(data)["transaction_id"]
        script = os.path.join(OUT, "edge.lua")
        with open(script, "w") as f:
            f.write('wrk.headers["X-Tenant-ID"] = "coop-1"\n')
        status, _ = call(edge_port, "GET", f"/v1/transactions/{tx}", b"", {"X-Tenant-ID": "coop-1"})
        assert status == 200, status
        direct_url = f"http://127.0.0.1:{cell_port}/v1/transactions/{tx}"
        edge_url = f"http://127.0.0.1:{edge_port}/v1/transactions/{tx}"
        # One connection: the hop's own cost, with the CPU not saturated.
        direct_one = wrk(direct_url, script, threads=1, connections=1)
        edge_one = wrk(edge_url, script, threads=1, connections=1)
        # Saturated: 32 connections on 2 cores shared by wrk, the router and the cell.
        direct = wrk(direct_url, script)
        before = rss_kib(edge.pid)
        routed = wrk(edge_url, script)
        routed.update({"rss_before_kib": before, "rss_after_kib": rss_kib(edge.pid), "peak_kib": rss_kib(edge.pid, "VmHWM")})
        return {"direct": direct, "edge": routed, "direct_one": direct_one, "edge_one": edge_one}
    finally:
        stop(edge)
        stop(cell)


def criterion():
    base = os.path.join(ROOT, "target", "criterion")
    results = {}
    for group in ("create", "get"):
        for path in ("direct", "aws-rest-v1", "aws-http-v2", "aws-http-v2-workload", "aws-alb", "azure-payload"):
            row = {}
            for kind, name in (("path", path), ("floor", f"{path}-floor")):
                file = os.path.join(base, group, name, "new", "estimates.json")
                if os.path.exists(file):
                    with open(file) as f:
                        row[kind] = json.load(f)["mean"]["point_estimate"]
            results[f"{group}/{path}"] = row
    return results


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {"quick": QUICK}
    results["criterion_ns"] = criterion()
    py = subprocess.run([PYTHON, os.path.join(PY_DIR, "bench.py"), EVENTS, "2000" if QUICK else "20000"], capture_output=True, text=True, check=True)
    results["python_ns"] = json.loads(py.stdout)
    results["sizes_bytes"] = {"lambda-cell bootstrap": os.path.getsize(BOOTSTRAP), "azure-cell": os.path.getsize(AZURE_CELL)}
    emulator = Emulator()
    try:
        results["cold_start_ms"] = {"lambda-cell": cold_starts(emulator, "rust"), "python baseline": cold_starts(emulator, "python")}
    finally:
        emulator.close()
    # One stub per process: a stopped runtime's pending `next` must not swallow the next one's event.
    results["rss"] = {}
    for name, kind in (("lambda-cell", "rust"), ("python baseline", "python")):
        stub = StubRuntimeApi()
        try:
            results["rss"][name] = rss_over_invocations(stub, kind)
        finally:
            stub.close()
    ready, first = azure_cold_starts()
    results["cold_start_ms"]["azure-cell ready"] = ready
    results["cold_start_ms"]["azure-cell first reply"] = first
    results["load"] = {"forwarding": load("forwarding"), "payload": load("payload")}
    results["edge_load"] = edge_load()
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
