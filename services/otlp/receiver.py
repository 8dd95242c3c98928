"""A loopback OTLP/HTTP receiver for logs, for the `otlp` export tests.

No OpenTelemetry Collector installs from the registries this project reaches, so this receiver is the
next best arbiter: it parses every export with the official protobuf definitions
(``opentelemetry-proto`` from PyPI, the ones the Python SDK and the Collector's schema come from) and
refuses what a Collector's OTLP receiver refuses:

- only ``POST /v1/logs`` (another path: 404);
- ``Content-Type: application/x-protobuf`` (415 otherwise; JSON encoding is not modelled);
- a body that is an ``ExportLogsServiceRequest`` with no unknown fields (400 otherwise);
- trace ids of 0 or 16 bytes, span ids of 0 or 8 bytes, known severity numbers (400 otherwise);
- success: 200 with an empty ``ExportLogsServiceResponse`` (``application/x-protobuf``).

Not modelled: gzip, JSON, partial success, traces and metrics signals, authentication.

Test endpoints (not OTLP): ``GET /_otlp/logs`` lists every record received, flattened to JSON;
``GET /_otlp/health`` answers 200.

    .venv-services/bin/python services/otlp/receiver.py --port 4318
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

LOCK = threading.Lock()
RECORDS = []


def any_value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def check(request, body):
    """Why the export is refused, or None."""
    stripped = ExportLogsServiceRequest()
    stripped.CopyFrom(request)
    stripped.DiscardUnknownFields()
    if len(stripped.SerializeToString()) != len(body):
        return "unknown fields (or a non-canonical encoding)"
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                if len(record.trace_id) not in (0, 16):
                    return f"trace_id of {len(record.trace_id)} bytes"
                if len(record.span_id) not in (0, 8):
                    return f"span_id of {len(record.span_id)} bytes"
                if record.severity_number not in SeverityNumber.values():
                    return f"severity_number {record.severity_number}"
    return None


def flatten(request):
    out = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                out.append(
                    {
                        "service": resource.get("service.name"),
                        "scope": scope_logs.scope.name,
                        "time_unix_nano": record.time_unix_nano,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text,
                        "body": any_value(record.body),
                        "trace_id": record.trace_id.hex(),
                        "attributes": {kv.key: any_value(kv.value) for kv in record.attributes},
                    }
                )
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_otlp/health":
            return self.answer(200, b"{}")
        if self.path == "/_otlp/logs":
            with LOCK:
                return self.answer(200, json.dumps(RECORDS).encode())
        return self.answer(404, b'{"error":"not found"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/logs":
            return self.answer(404, b'{"error":"not found"}')
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-protobuf":
            return self.answer(415, b'{"error":"only application/x-protobuf is modelled"}')
        request = ExportLogsServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            return self.answer(400, json.dumps({"error": f"not an ExportLogsServiceRequest: {e}"}).encode())
        refused = check(request, body)
        if refused:
            return self.answer(400, json.dumps({"error": refused}).encode())
        with LOCK:
            RECORDS.extend(flatten(request))
        self.answer(200, ExportLogsServiceResponse().SerializeToString(), "application/x-protobuf")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
