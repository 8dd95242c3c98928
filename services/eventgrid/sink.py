"""A loopback stand-in for an Event Grid custom topic in the CloudEvents schema.

No Event Grid emulator installs from the registries this project reaches, so this models the publish
API from the documentation (learn.microsoft.com azure/event-grid post-to-custom-topic,
security-authenticate-publishing-clients) and checks what the real service checks:

- only ``POST /api/events?api-version=2018-01-01`` (another path: 404; another version: 400);
- authentication: ``aeg-sas-key`` equal to the configured key, or ``Authorization: Bearer <token>``
  with a token this process issued for ``https://eventgrid.azure.net`` and not yet expired (see the
  managed identity below); neither: 401 with the service's message; a wrong key or token: 401;
- ``Content-Type: application/cloudevents-batch+json`` (charset utf-8 if given), else 400;
- the body: a non-empty JSON array of CloudEvents each with ``id``, ``source``, ``specversion`` "1.0"
  and ``type``, else 400;
- sizes: the request and each event at most 1 MB (1,048,576 bytes), else 413, all or nothing;
- success: 200 with an empty body and ``api-supported-versions: 2018-01-01``.

It also stands in for the **App Service managed identity endpoint** a Function App gets
(``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``, learn.microsoft.com app-service overview-managed-identity,
REST protocol), which ``azure_identity``'s ``ManagedIdentityCredential`` calls:
``GET /_identity/token?api-version=2019-08-01&resource=<resource>`` with ``X-IDENTITY-HEADER`` equal to
``--identity-header`` (else 401) answers ``{"access_token", "expires_on" (Unix seconds, a string),
"resource", "token_type": "Bearer"}``, a new opaque token valid ``--token-ttl`` seconds. Tokens are not
JWTs and carry no signature: only this process can tell them valid, which is what the topic checks.

Not modelled: SAS tokens (``aeg-sas-token``), the Event Grid schema, delivery to subscribers
(handshakes, retries, dead-lettering), rate limits other than injected ones, Entra ID itself (roles,
tenants, JWT validation).

Test endpoints (not part of Event Grid): ``GET /_sink/events`` lists every event accepted, in order,
duplicates kept; ``DELETE /_sink/events`` forgets them; ``POST /_sink/faults`` with
``{"statuses": [429, 503]}`` answers the next publishes with those statuses, in order;
``GET /_identity/requests`` counts the tokens issued, by resource.

    python3 services/eventgrid/sink.py --port 8082 --key local-eventgrid-key
"""

import argparse
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BYTES = 1_048_576
CONTENT_TYPE = "application/cloudevents-batch+json"


EVENT_GRID_RESOURCE = "https://eventgrid.azure.net"


class State:
    def __init__(self, key, identity_header, token_ttl):
        self.key = key
        self.identity_header = identity_header
        self.token_ttl = token_ttl
        self.lock = threading.Lock()
        self.events = []
        self.faults = []
        self.tokens = {}  # token -> (resource, expires_on)
        self.issued = {}  # resource -> count


def error(code, message):
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):  # quiet: the tests read the recorded events
        pass

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("api-supported-versions", "2018-01-01")
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        url = urlsplit(self.path)
        path = url.path
        if path == "/_identity/token":
            return self.issue_token(parse_qs(url.query))
        if path == "/_identity/requests":
            with self.state.lock:
                body = json.dumps(self.state.issued).encode()
            return self.answer(200, body)
        if path == "/_sink/events":
            with self.state.lock:
                body = json.dumps(self.state.events).encode()
            return self.answer(200, body)
        if path == "/_sink/health":
            return self.answer(200, b"{}")
        return self.answer(404, error("NotFound", "not found"))

    def issue_token(self, query):
        if self.headers.get("X-IDENTITY-HEADER") != self.state.identity_header:
            return self.answer(401, error("Unauthorized", "X-IDENTITY-HEADER is missing or wrong."))
        if query.get("api-version") != ["2019-08-01"] or len(query.get("resource", [])) != 1:
            return self.answer(400, error("BadRequest", "api-version 2019-08-01 and one resource are required."))
        resource = query["resource"][0].rstrip("/")
        token = "mi-" + secrets.token_urlsafe(24)
        expires_on = int(time.time()) + self.state.token_ttl
        with self.state.lock:
            self.state.tokens[token] = (resource, expires_on)
            self.state.issued[resource] = self.state.issued.get(resource, 0) + 1
        body = json.dumps({"access_token": token, "expires_on": str(expires_on),
                           "resource": resource, "token_type": "Bearer"}).encode()
        return self.answer(200, body)

    def bearer_valid(self, token):
        with self.state.lock:
            issued = self.state.tokens.get(token)
        return issued is not None and issued[0] == EVENT_GRID_RESOURCE and issued[1] > time.time()

    def do_DELETE(self):
        if urlsplit(self.path).path == "/_sink/events":
            with self.state.lock:
                self.state.events.clear()
            return self.answer(204)
        return self.answer(404, error("NotFound", "not found"))

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.body()
        if url.path == "/_sink/faults":
            statuses = json.loads(body or b"{}").get("statuses", [])
            with self.state.lock:
                self.state.faults.extend(int(s) for s in statuses)
            return self.answer(204)
        if url.path != "/api/events":
            return self.answer(404, error("NotFound", "The requested resource is not found."))
        if parse_qs(url.query).get("api-version") != ["2018-01-01"]:
            return self.answer(400, error("BadRequest", "The api-version is missing or not supported."))
        key = self.headers.get("aeg-sas-key")
        bearer = (self.headers.get("Authorization") or "").strip()
        if key is None and not bearer.startswith("Bearer "):
            return self.answer(401, error(
                "Unauthorized",
                "Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key."))
        if key is not None and key != self.state.key:
            return self.answer(401, error("Unauthorized", "The request authorization key is not authorized."))
        if key is None and not self.bearer_valid(bearer[len("Bearer "):].strip()):
            return self.answer(401, error("Unauthorized", "The access token is invalid or has expired."))
        media = (self.headers.get("Content-Type") or "").split(";")
        params = [p.strip().lower() for p in media[1:] if p.strip()]
        if media[0].strip().lower() != CONTENT_TYPE or any(
                p.startswith("charset=") and p != "charset=utf-8" for p in params):
            return self.answer(400, error("BadRequest", f"Content-Type must be {CONTENT_TYPE}; charset=utf-8."))
        if len(body) > MAX_BYTES:
            return self.answer(413, error("RequestEntityTooLarge",
                                          f"The maximum size ({MAX_BYTES}) has been exceeded."))
        try:
            events = json.loads(body)
        except ValueError:
            return self.answer(400, error("BadRequest", "The request body is not valid JSON."))
        if not isinstance(events, list) or not events:
            return self.answer(400, error("BadRequest", "A CloudEvents batch is a non-empty JSON array."))
        for event in events:
            if not isinstance(event, dict) or any(
                    not isinstance(event.get(a), str) or not event.get(a)
                    for a in ("id", "source", "specversion", "type")) or event["specversion"] != "1.0":
                return self.answer(400, error(
                    "BadRequest", "Each CloudEvent needs id, source, specversion 1.0 and type."))
            if len(json.dumps(event, separators=(",", ":")).encode()) > MAX_BYTES:
                return self.answer(413, error("RequestEntityTooLarge", "An event exceeds 1 MB."))
        with self.state.lock:
            fault = self.state.faults.pop(0) if self.state.faults else None
            if fault is None:
                self.state.events.extend(events)
        if fault is not None:
            return self.answer(fault, error("Injected", f"injected {fault}"))
        return self.answer(200)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--key", required=True)
    parser.add_argument("--identity-header", default="local-identity-header-not-a-secret")
    parser.add_argument("--token-ttl", type=int, default=3600)
    args = parser.parse_args()
    Handler.state = State(args.key, args.identity_header, args.token_ttl)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
