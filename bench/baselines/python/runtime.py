"""A minimal Lambda Runtime API client (next → handler → response), used to run the Python
baseline under cargo-lambda's emulator. awslambdaric 4.2.2's native client segfaults on that
emulator's `next` responses (see BENCHMARKS.md); this loop speaks the same protocol with less
start-up work, so it can only flatter the baseline.
Usage: python runtime.py app.http_handler   (AWS_LAMBDA_RUNTIME_API=http://host:port/.rt)
"""
import http.client
import importlib
import json
import os
import socket
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
module, function = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
api = urllib.parse.urlsplit(os.environ["AWS_LAMBDA_RUNTIME_API"])
base = api.path.rstrip("/") + "/2018-06-01/runtime/invocation"
conn = http.client.HTTPConnection(api.hostname, api.port)
conn.connect()
# http.client writes headers and body separately: without this, Nagle meets delayed ACKs.
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Context:
    def __init__(self, request_id):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "_")
        self.memory_limit_in_mb = 128
        self.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"


while True:
    conn.request("GET", f"{base}/next")
    reply = conn.getresponse()
    event = json.loads(reply.read())
    request_id = reply.getheader("Lambda-Runtime-Aws-Request-Id")
    result = handler(event, Context(request_id))
    body = json.dumps(result).encode()
    conn.request("POST", f"{base}/{request_id}/response", body=body, headers={"Content-Type": "application/json"})
    conn.getresponse().read()
