"""Schemathesis hooks for the run against local-cell.

A schema-valid create whose Idempotency-Key was used before with another payload is refused (422
idempotency-key-reused), as the contract says; the generator reuses short keys often. So every
*valid* generated key gets a unique suffix, while invalid keys are left alone for the negative
checks. Idempotent replays are the conformance corpus's to test.

The cell reads every header as an HTTP list (RFC 9110 §5.3, §5.6.1: lines joined, split on commas,
empty elements dropped; `domain/src/contract/http/request.rs`), because hops merge repeated lines and
drop empty ones differently: `,-` *is* the key `-` on the wire. The generator cannot know that, so a
comma-bearing negative value whose list reading leaves a single element would be "accepted" although
every cloud reads it alike. Such a value becomes `x,y` — two elements, which every header of the
contract refuses under either reading — so the negative check stays a negative check.
"""
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-+\--~]{1,255}")


def list_elements(value):
    """The header value as the cell reads it: split on commas, trimmed, empty elements dropped."""
    return [e.strip(" \t") for e in value.split(",") if e.strip(" \t")]


@schemathesis.hook
def map_headers(ctx, headers):
    if headers is None:
        return headers
    for name in list(headers):
        value = headers[name]
        if isinstance(value, str) and "," in value and len(list_elements(value)) == 1:
            headers[name] = "x,y"
            continue
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and VALID_KEY.fullmatch(key):
                headers[name] = f"{key[:200]}-{uuid.uuid4().hex}"
    return headers
