"""Per-request cost of the Python baseline, in process, on the same events as the Rust benchmark:
json.loads(event bytes) + handler + json.dumps(response), as the Lambda runtime does around a handler.
Prints JSON: {"create-rest-v1": ns_per_request, ...}.
"""
import json
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import app  # noqa: E402

EVENTS = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000


class Context:
    function_name = "bench"
    aws_request_id = "bench"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"


def load(name):
    with open(f"{EVENTS}/{name}.json") as f:
        return f.read()


def measure(handler, inputs):
    ctx = Context()
    start = time.perf_counter_ns()
    for raw in inputs:
        out = handler(json.loads(raw), ctx)
        json.dumps(out)
    return (time.perf_counter_ns() - start) / len(inputs)


results = {}
for name, file, handler in [("rest-v1", "aws-apigw-v1", app.rest_handler), ("http-v2", "aws-apigw-v2", app.http_handler)]:
    template = load(f"create-{file}")
    inputs = [template.replace("IDEM-KEY-PLACEHOLDER", f"k-{name}-{i}") for i in range(N)]
    first = handler(json.loads(inputs[0].replace("IDEM-KEY-PLACEHOLDER", "warm")), Context())
    assert first["statusCode"] == 201, first
    results[f"create-{name}"] = measure(handler, inputs)
    tx_id = json.loads(handler(json.loads(template.replace("IDEM-KEY-PLACEHOLDER", f"seed-{name}")), Context())["body"])["transaction_id"]
    get = load(f"get-{file}").replace("TX-ID-PLACEHOLDER", tx_id)
    assert handler(json.loads(get), Context())["statusCode"] == 200
    results[f"get-{name}"] = measure(handler, [get] * N)
print(json.dumps(results))
