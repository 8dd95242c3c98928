"""The usual Python stack, on the same contract subset as the Paracell benchmark: create with
validation (pydantic, Decimal amounts), an in-memory ledger with idempotency, problem responses, and
get. Powertools' APIGatewayRestResolver (REST, payload 1.0) and APIGatewayHttpResolver (HTTP API,
payload 2.0).
"""
import json
import re
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Dict, Literal, Optional

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MINOR_UNITS = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0, "BHD": 3, "KWD": 3, "CHF": 2, "CLF": 4}
AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]+)?$")
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CELL_ID = "cell-py"


class NewTransaction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    account_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    type: Literal["credit", "debit"]
    amount: str
    currency: str
    reference: Optional[str] = Field(default=None, max_length=140)
    metadata: Optional[Dict[str, str]] = None

    @field_validator("amount")
    @classmethod
    def amount_is_decimal_text(cls, v: str) -> str:
        if not AMOUNT.match(v):
            raise ValueError("amount must be a decimal string")
        return v

    @field_validator("currency")
    @classmethod
    def currency_known(cls, v: str) -> str:
        if v not in MINOR_UNITS:
            raise ValueError("unsupported currency")
        return v


TRANSACTIONS: Dict[tuple, dict] = {}
BALANCES: Dict[tuple, Decimal] = {}
KEYS: Dict[tuple, tuple] = {}


def problem(status: int, slug: str, title: str, detail: str, errors=None) -> Response:
    body = {"type": f"urn:paracell:problem:{slug}", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return Response(status_code=status, content_type="application/problem+json; charset=utf-8",
                    body=json.dumps(body, separators=(",", ":")), headers={"cache-control": "no-store"})


def resource(status: int, body: dict, location: Optional[str] = None) -> Response:
    headers = {"cache-control": "no-store"}
    if location:
        headers["location"] = location
    return Response(status_code=status, content_type="application/json; charset=utf-8",
                    body=json.dumps(body, separators=(",", ":")), headers=headers)


def register(app):
    def tenant():
        t = app.current_event.get_header_value("x-tenant-id", case_sensitive=False)
        if not t:
            return None, problem(400, "missing-tenant", "Missing tenant", "The X-Tenant-ID header is required.")
        if not TENANT.match(t):
            return None, problem(400, "invalid-tenant", "Invalid tenant", "X-Tenant-ID is not a valid tenant id.")
        return t, None

    @app.post("/v1/transactions")
    def create():
        t, err = tenant()
        if err:
            return err
        key = app.current_event.get_header_value("idempotency-key", case_sensitive=False)
        if not key:
            return problem(400, "missing-idempotency-key", "Missing idempotency key", "The Idempotency-Key header is required.")
        ct = (app.current_event.get_header_value("content-type", case_sensitive=False) or "").split(";")[0].strip().lower()
        if ct != "application/json":
            return problem(415, "unsupported-media-type", "Unsupported media type", "Content-Type must be application/json.")
        try:
            payload = json.loads(app.current_event.body or "")
        except ValueError:
            return problem(400, "malformed-request", "Malformed request", "the request body is not valid JSON")
        if not isinstance(payload, dict):
            return problem(400, "malformed-request", "Malformed request", "the request body must be a JSON object")
        try:
            cmd = NewTransaction.model_validate(payload)
            amount = Decimal(cmd.amount)
            exp = MINOR_UNITS[cmd.currency]
            if -amount.as_tuple().exponent > exp or amount <= 0:
                raise ValueError("amount scale or sign")
        except (ValidationError, ValueError, InvalidOperation) as e:
            errors = [{"pointer": "/" + "/".join(str(p) for p in x["loc"]), "code": x["type"], "detail": x["msg"]} for x in e.errors()] if isinstance(e, ValidationError) else [{"pointer": "/amount", "code": "invalid", "detail": str(e)}]
            return problem(422, "validation-failed", "Validation failed", "The request body breaks rules; see errors.", errors)
        fingerprint = cmd.model_dump_json()
        existing = KEYS.get((t, key))
        if existing:
            if existing[0] != fingerprint:
                return problem(422, "idempotency-key-reused", "Idempotency key reused", "different payload")
            replay = existing[1]
            replay.headers["idempotent-replayed"] = "true"
            return replay
        balance = BALANCES.get((t, cmd.account_id, cmd.currency), Decimal(0))
        new = balance + amount if cmd.type == "credit" else balance - amount
        if new < 0:
            response = problem(409, "insufficient-funds", "Insufficient funds", "The debit exceeds the available balance.")
            KEYS[(t, key)] = (fingerprint, response)
            return response
        q = Decimal(1).scaleb(-exp)
        tx_id = str(uuid.uuid4())
        tx = {"transaction_id": tx_id, "tenant_id": t, "account_id": cmd.account_id, "type": cmd.type,
              "amount": str(amount.quantize(q)), "currency": cmd.currency}
        if cmd.reference is not None:
            tx["reference"] = cmd.reference
        if cmd.metadata is not None:
            tx["metadata"] = dict(sorted(cmd.metadata.items()))
        tx.update({"status": "accepted", "balance_after": str(new.quantize(q)),
                   "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "cell_id": CELL_ID})
        BALANCES[(t, cmd.account_id, cmd.currency)] = new
        TRANSACTIONS[(t, tx_id)] = tx
        response = resource(201, tx, f"/v1/transactions/{tx_id}")
        KEYS[(t, key)] = (fingerprint, response)
        return response

    @app.get("/v1/transactions/<tx_id>")
    def get(tx_id: str):
        t, err = tenant()
        if err:
            return err
        tx = TRANSACTIONS.get((t, tx_id))
        if tx is None:
            return problem(404, "transaction-not-found", "Transaction not found", "No transaction with this id exists for this tenant.")
        return resource(200, tx)

    return app


rest_app = register(APIGatewayRestResolver())
http_app = register(APIGatewayHttpResolver())


def rest_handler(event, context):
    return rest_app.resolve(event, context)


def http_handler(event, context):
    return http_app.resolve(event, context)
