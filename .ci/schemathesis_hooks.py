"""Schemathesis hooks for the run against local-cell.

A schema-valid create whose Idempotency-Key was used before with another payload is refused (422
idempotency-key-reused), as the contract says; the generator reuses short keys often. So every
*valid* generated key gets a unique suffix, while invalid keys are left alone for the negative
checks. Idempotent replays are the conformance corpus's to test.
"""
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-+\--~]{1,255}")


@schemathesis.hook
def map_headers(ctx, headers):
    if headers is None:
        return headers
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and VALID_KEY.fullmatch(key):
                headers[name] = f"{key[:200]}-{uuid.uuid4().hex}"
    return headers
